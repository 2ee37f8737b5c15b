"""User x title interactions from gold, as the confidence matrix ALS trains on, and the time-based split.

An interaction is one user's watching of one VOD title on one day: seconds of playing (heartbeats) and the
completion of the views that ended (view_end). Its **strength** is ``watch minutes x (1 + completion)``: time
spent is the signal, and finishing a title counts double against leaving it half-way. The weighting setting
turns strength into the matrix's values (ALS then uses ``1 + alpha x value`` as confidence).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:
    import pandas as pd
    from scipy.sparse import csr_matrix

Weighting = Literal["log", "bm25", "none"]

INTERACTION_COLUMNS = ("user_id", "content_id", "event_date", "watch_seconds", "completion_pct")
"""The frame :func:`build_matrix` and :func:`time_split` take: one row per user, title and day (any order)."""

MIN_RELEVANT_SECONDS = 60.0
"""A held-out interaction counts as relevant (the user chose the title and watched it) from this much watching."""


def strength(watch_seconds: np.ndarray, completion_pct: np.ndarray) -> np.ndarray:
    """``watch minutes x (1 + completion)``; an unknown completion (the view has not ended) counts as 0."""
    minutes = np.clip(np.nan_to_num(np.asarray(watch_seconds, dtype=np.float64), nan=0.0), 0.0, None) / 60.0
    completion = np.clip(np.nan_to_num(np.asarray(completion_pct, dtype=np.float64), nan=0.0), 0.0, 100.0) / 100.0
    return minutes * (1.0 + completion)


@dataclass(frozen=True)
class Matrix:
    """A user x item matrix with the ids of its rows and columns."""

    user_ids: np.ndarray
    item_ids: np.ndarray
    values: csr_matrix
    """float32, users x items: the weighted strength (zero where the user never watched the title)."""

    def user_index(self) -> dict[str, int]:
        return {str(u): i for i, u in enumerate(self.user_ids)}

    def item_index(self) -> dict[str, int]:
        return {str(c): i for i, c in enumerate(self.item_ids)}


def weigh(values: csr_matrix, weighting: Weighting) -> csr_matrix:
    """Strength -> matrix values by the weighting setting (see :data:`Weighting`)."""
    from scipy.sparse import csr_matrix as csr

    if weighting == "none":
        return values
    if weighting == "log":
        out = values.copy()
        out.data = np.log1p(out.data).astype(np.float32)
        return out
    if weighting == "bm25":
        from implicit.nearest_neighbours import bm25_weight

        return csr(bm25_weight(values, K1=100, B=0.8), dtype=np.float32)
    raise ValueError(f"unknown weighting {weighting!r}: use log, bm25 or none")


def build_matrix(frame: pd.DataFrame, weighting: Weighting, *, item_ids: np.ndarray | None = None) -> Matrix:
    """The weighted user x item matrix of the interactions in ``frame`` (:data:`INTERACTION_COLUMNS`).

    A (user, title) pair sums its days' watch seconds and keeps their best completion, then gets its strength;
    pairs without strength and users without any pair are left out. ``item_ids`` fixes the columns (the
    catalog), so titles nobody watched still have a column and interactions with titles outside it are dropped;
    without it the columns are the titles watched. The pairs are grouped on integer codes with numpy (a sort and
    two ``reduceat``), which costs a fraction of a pandas group-by on the id strings.
    """
    import pandas as pd
    from scipy.sparse import csr_matrix

    users, user_codes = _codes(frame["user_id"])
    if item_ids is None:
        items, item_codes = _codes(frame["content_id"])
    else:
        items = np.asarray(item_ids, dtype=object)
        item_codes = pd.Index(items).get_indexer(frame["content_id"]).astype(np.int64)
    keep = item_codes >= 0
    watch = np.nan_to_num(frame["watch_seconds"].to_numpy(dtype=np.float64, na_value=np.nan), nan=0.0)[keep]
    completion = np.nan_to_num(frame["completion_pct"].to_numpy(dtype=np.float64, na_value=np.nan), nan=0.0)[keep]
    key = user_codes[keep] * max(len(items), 1) + item_codes[keep]
    order = np.argsort(key, kind="stable")
    key = key[order]
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]]) if key.size else np.zeros(0, dtype=np.int64)
    pair = key[starts]
    values = strength(np.add.reduceat(watch[order], starts) if key.size else watch,
                      np.maximum.reduceat(completion[order], starts) if key.size else completion)
    positive = values > 0
    pair, values = pair[positive], values[positive].astype(np.float32)
    rows, cols = pair // max(len(items), 1), pair % max(len(items), 1)
    kept_users, rows = np.unique(rows, return_inverse=True)
    matrix = csr_matrix((values, (rows, cols)), shape=(len(kept_users), len(items)))
    return Matrix(users[kept_users], items, weigh(matrix, weighting))


def _codes(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    import pandas as pd

    codes, uniques = pd.factorize(column, sort=True)
    return np.asarray(uniques, dtype=object), codes.astype(np.int64)


@dataclass(frozen=True)
class Split:
    """Interactions before the split day (training) and from it on (held out)."""

    train: pd.DataFrame
    test: pd.DataFrame
    split_day: object
    """The first held-out day (a ``datetime.date``)."""


def time_split(frame: pd.DataFrame, holdout_days: int) -> Split:
    """Hold out the newest ``holdout_days`` days of the frame's range (by ``event_date``).

    Raises:
        ValueError: the frame spans no more days than are held out (nothing would be left to train on).
    """
    import pandas as pd

    days = pd.to_datetime(frame["event_date"]).dt.date
    distinct = sorted(set(days))
    if len(distinct) <= holdout_days:
        raise ValueError(f"the interactions span {len(distinct)} day(s); holding out {holdout_days} leaves nothing "
                         "to train on: read more days or hold out fewer")
    split_day = distinct[-holdout_days]
    held = (days >= split_day).to_numpy()
    return Split(frame[~held].reset_index(drop=True), frame[held].reset_index(drop=True), split_day)


def relevant_items(test: pd.DataFrame, train_seen: dict[str, set[str]]) -> dict[str, set[str]]:
    """User -> the titles they watched for at least :data:`MIN_RELEVANT_SECONDS` in the held-out period and had
    not watched in the training period: what a recommender made before the split should have found."""
    pairs = (test.groupby(["user_id", "content_id"], sort=False).agg(watch_seconds=("watch_seconds", "sum"))
             .reset_index())
    pairs = pairs[pairs["watch_seconds"] >= MIN_RELEVANT_SECONDS]
    out: dict[str, set[str]] = {}
    for user, content in zip(pairs["user_id"], pairs["content_id"], strict=True):
        if content not in train_seen.get(user, ()):
            out.setdefault(user, set()).add(content)
    return out


def seen_items(matrix: Matrix) -> dict[str, set[str]]:
    """User -> the titles with a value in the matrix."""
    indptr, indices = matrix.values.indptr, matrix.values.indices
    return {str(u): {str(matrix.item_ids[j]) for j in indices[indptr[i]:indptr[i + 1]]}
            for i, u in enumerate(matrix.user_ids)}
