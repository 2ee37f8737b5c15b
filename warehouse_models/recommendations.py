"""The recommendation model's outputs analysts can query, and the words of its answers.

A daily training (``batch_layer.models``) writes the published model's top titles per user and similar titles per
title as gold Delta tables (replaced whole at each publication, stamped with the model version), next to the
Redis keys of :class:`~warehouse_models.redis_keys.KeyLayout` (``model_*``) the serving API reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

from warehouse_models.tables import TableSpec
from warehouse_models.types import Column

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import ArrayLike

RECS_USER_TOP_N = TableSpec(
    "recs_user_top_n", "gold",
    (
        Column("model_version", "string", "The published model version that made the list.", nullable=False),
        Column("user_id", "string", "Profile (-> dim_users).", nullable=False),
        Column("rank", "int", "1 is the best.", nullable=False),
        Column("content_id", "string", "Recommended title (-> dim_content).", nullable=False),
        Column("score", "double", "Hybrid score (ALS, content and segment popularity, each scaled to [0, 1]).",
               nullable=False),
        Column("because_content_id", "string",
               "The user's watched title the recommendation is most like (its reason), null when none is."),
        Column("generated_at", "timestamp", "When the model was trained (UTC).", nullable=False),
    ),
    (),
    "Top recommended titles per user of the published model, without the titles the user already watched "
    "(the serving API re-ranks them at request time with what the user just watched).",
)

RECS_SIMILAR_TITLES = TableSpec(
    "recs_similar_titles", "gold",
    (
        Column("model_version", "string", "The published model version.", nullable=False),
        Column("content_id", "string", "Title (-> dim_content).", nullable=False),
        Column("rank", "int", "1 is the most similar.", nullable=False),
        Column("similar_content_id", "string", "A similar title (-> dim_content).", nullable=False),
        Column("score", "double", "Cosine of the two titles' TF-IDF vectors (title, description, genres, people).",
               nullable=False),
    ),
    (),
    "The titles most like each title by content (TF-IDF over dim_content's text), of the published model.",
)

RECOMMENDATION_TABLES: tuple[TableSpec, ...] = (RECS_USER_TOP_N, RECS_SIMILAR_TITLES)

ReasonKind = Literal["because_you_watched", "trending_in_your_country", "matches_your_search", "popular"]
"""Why a title is recommended: like a title the user watched (named), among the most watched in the user's
country and device segment, close to a recent search (named), or, failing those, popular overall."""


BUNDLE_ARRAYS: tuple[str, ...] = (
    "item_ids", "item_titles", "item_durations_s", "item_factors",
    "tfidf_data", "tfidf_indices", "tfidf_indptr", "tfidf_terms", "tfidf_idf",
    "popularity_global", "popularity_segments", "popularity_counts",
)
"""The arrays of a model version the API loads once per version (an ``.npz`` in the ``bundle`` field of
:meth:`~warehouse_models.redis_keys.KeyLayout.model_items`): the catalog with its factors, its TF-IDF rows and
vocabulary, and the popularity per segment."""

AFFINITY_ARRAYS: tuple[str, ...] = ("affinity_users", "affinity_genres", "affinity")
"""Each user's genre affinity in a model version (an ``.npz`` in the ``affinity`` field of
:meth:`~warehouse_models.redis_keys.KeyLayout.model_items`): user ids, genre names, and users x genres shares of
the user's watch strength (a title counts fully for its main genre and half for its second)."""

USER_FIELDS: tuple[str, ...] = ("factors", "seen", "recs", "segment")
"""Fields of :meth:`~warehouse_models.redis_keys.KeyLayout.model_user`."""

GLOBAL_SEGMENT = "*"
"""The segment of a user whose country and device are unknown: catalog-wide popularity."""


def segment_of(country: str | None, device_type: str | None) -> str:
    """A popularity segment: the user's country and device type."""
    return f"{country or 'unknown'}|{device_type or 'unknown'}"


def release_affinity(affinity: np.ndarray, genres: Sequence[str], primary: str | None,
                     secondary: str | None) -> np.ndarray:
    """Per user, how much a new title's genres match their taste: the affinity of its main genre plus half that
    of its second (a title of an unknown genre matches nobody)."""
    import numpy as np

    index = {g: i for i, g in enumerate(genres)}
    out = np.zeros(affinity.shape[0], dtype=np.float32)
    if primary in index:
        out += affinity[:, index[primary]]
    if secondary in index:
        out += 0.5 * affinity[:, index[secondary]]
    return out


def matching_users(affinity: np.ndarray, genres: Sequence[str], primary: str | None, secondary: str | None, *,
                   threshold: float, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """(user rows, match) of the users whose match with a new title is at least ``threshold``, best first, at
    most ``limit``."""
    import numpy as np

    match = release_affinity(affinity, genres, primary, secondary)
    rows = np.flatnonzero(match >= threshold)
    rows = rows[np.argsort(-match[rows], kind="stable")][:limit]
    return rows, match[rows]


TOKEN_PATTERN = r"(?u)\b\w[\w-]+\b"
"""Terms of the TF-IDF space (lower-cased): words of two or more characters, hyphenated words kept whole."""

SEGMENT_PRIOR = 5.0
"""Segment popularity is smoothed by this many pseudo-viewers spread by global share, so a small segment still
ranks every title."""


def segment_popularity(global_counts: ArrayLike, segment_counts: ArrayLike | None) -> np.ndarray:
    """Distinct viewers per title in a segment, smoothed by the catalog-wide counts (the global counts with the
    same smoothing when the segment is unknown)."""
    import numpy as np

    counts = np.asarray(global_counts, dtype=np.float32)
    total = float(counts.sum()) or 1.0
    prior = SEGMENT_PRIOR * counts / total
    if segment_counts is None:
        return counts + prior
    tie_break = 1e-3 * counts / (float(counts.max()) or 1.0)
    return np.asarray(segment_counts, dtype=np.float32) + prior + tie_break


def query_vector(text: str, vocabulary: dict[str, int], idf: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """A free text in the TF-IDF space of a model: (term indices, L2-normalised weights), sublinear term
    frequency times idf, the transform the daily training fitted (unknown terms are dropped)."""
    import re
    from collections import Counter

    import numpy as np

    counts = Counter(t for t in re.findall(TOKEN_PATTERN, text.lower()) if t in vocabulary)
    if not counts:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    idx = np.fromiter((vocabulary[t] for t in counts), dtype=np.int64)
    weights = (1.0 + np.log(np.fromiter(counts.values(), dtype=np.float64))) * np.asarray(idf, np.float64)[idx]
    norm = float(np.linalg.norm(weights)) or 1.0
    return idx, (weights / norm).astype(np.float32)


# --- the hybrid score: one definition for the daily training and the API's live re-ranking -----------------------
def unit(scores: ArrayLike) -> np.ndarray:
    """Scale scores to [0, 1] along the last axis (each row of a matrix on its own); a constant row becomes zeros
    and infinities (excluded titles) stay as they are."""
    import numpy as np

    array = np.asarray(scores, dtype=np.float32)
    if array.size == 0:
        return array
    finite = np.isfinite(array)
    low = np.where(finite, array, np.inf).min(axis=-1, keepdims=True)
    high = np.where(finite, array, -np.inf).max(axis=-1, keepdims=True)
    span = high - low
    ok = np.isfinite(span) & (span > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        scaled = np.where(ok, (array - np.where(ok, low, 0)) / np.where(ok, span, 1), 0.0)
    return np.where(finite, scaled, array).astype(np.float32)


def hybrid(als: ArrayLike | None, content: ArrayLike, popularity: ArrayLike, *, als_weight: float,
           content_weight: float, popularity_weight: float, has_als: ArrayLike | None = None) -> np.ndarray:
    """``a x unit(ALS) + c x unit(content) + p x unit(log(1 + popularity))`` over the same titles (the last axis;
    rows of matrices are users). ``als`` None, or False in ``has_als`` for a row, for a user without factors
    (cold start): no ALS term."""
    import numpy as np

    score = content_weight * unit(content) + popularity_weight * unit(np.log1p(np.asarray(popularity)))
    if als is not None:
        term = als_weight * unit(als)
        if has_als is not None:
            term = term * np.asarray(has_als, dtype=np.float32).reshape(-1, 1)
        score = score + term
    return np.asarray(score, dtype=np.float32)
