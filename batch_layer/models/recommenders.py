"""The four recommenders, scoring users against the whole catalog: ALS, content (TF-IDF), popularity, hybrid.

Every recommender takes the same :class:`UserContext` (what is known of a user: the titles watched with their
weights, the segment, stated genres) and answers a dense score per catalog title, so evaluation and publication
treat them alike. Seen titles are excluded by the caller (:func:`recommend`).

- **ALS** (``implicit``): the user's factors (from training, or solved from the titles the user watched when the
  user is new to the model) against the item factors; nothing for a user with no titles.
- **Content**: the cosine of each title with the user's taste in TF-IDF space (the watched titles' rows weighted
  by strength, or the stated genres as text when nothing was watched).
- **Popularity**: distinct viewers per title in the user's segment (country and device), backed by the global
  count so that a small segment still ranks every title.
- **Hybrid**: ``a x ALS + c x content + p x log(1 + segment popularity)``, each scaled to [0, 1] per user
  (:class:`HybridWeights`). Popularity carries what taste alone does not (how much a title is watched at all),
  content the genres and people, ALS the co-watching; titles without interactions (new releases) have no ALS
  signal and rank by content and popularity, and a user the model does not know (cold start) has no ALS term.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np

from batch_layer.models.content import ContentIndex, top_k
from batch_layer.models.matrix import Matrix
from warehouse_models.recommendations import GLOBAL_SEGMENT, hybrid, segment_popularity

if TYPE_CHECKING:
    from implicit.cpu.als import AlternatingLeastSquares

logger = logging.getLogger(__name__)

ModelName = Literal["als", "content", "popularity", "hybrid"]
MODEL_NAMES: tuple[ModelName, ...] = ("als", "content", "popularity", "hybrid")

@dataclass(frozen=True)
class AlsParams:
    factors: int = 64
    regularization: float = 0.05
    iterations: int = 15
    alpha: float = 2.0
    random_state: int = 42


def new_als(params: AlsParams, *, threads: int = 0) -> AlternatingLeastSquares:
    from implicit.cpu.als import AlternatingLeastSquares as CpuAls

    return CpuAls(factors=params.factors, regularization=params.regularization, alpha=params.alpha,
                  iterations=params.iterations, random_state=params.random_state, num_threads=threads)


def fit_als(matrix: Matrix, params: AlsParams) -> AlternatingLeastSquares:
    """Fit ALS on the matrix (BLAS held to one thread: implicit parallelises itself and warns otherwise)."""
    import implicit.cpu.als  # noqa: F401 - loaded before the limit, so the BLAS it loads is limited too
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, "blas"):
        model = new_als(params)
        model.fit(matrix.values, show_progress=False)
    return model


@dataclass(frozen=True)
class HybridWeights:
    als: float = 0.5
    content: float = 0.4
    popularity: float = 1.0


@dataclass(frozen=True)
class UserContext:
    """What a recommender knows of one user."""

    user_id: str
    items: tuple[tuple[int, float], ...] = ()
    """Catalog indices of the titles watched, with their weighted strength."""
    segment: str = GLOBAL_SEGMENT
    preferences: str = ""
    """Stated favourite genres as text (used when nothing was watched)."""


@dataclass
class Popularity:
    """Distinct viewers per catalog title, globally and per segment."""

    global_counts: np.ndarray
    segments: dict[str, np.ndarray] = field(default_factory=dict)
    _cache: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @classmethod
    def count(cls, matrix: Matrix, user_segments: dict[str, str]) -> Popularity:
        viewed = (matrix.values > 0).astype(np.float32).tocsr()
        global_counts = np.asarray(viewed.sum(axis=0)).ravel().astype(np.float32)
        by_segment: dict[str, list[int]] = {}
        for i, user in enumerate(matrix.user_ids):
            by_segment.setdefault(user_segments.get(str(user), GLOBAL_SEGMENT), []).append(i)
        segments = {s: np.asarray(viewed[rows].sum(axis=0)).ravel().astype(np.float32)
                    for s, rows in by_segment.items() if s != GLOBAL_SEGMENT}
        return cls(global_counts, segments)

    def scores(self, segment: str) -> np.ndarray:
        """Segment viewers smoothed by the global share (so every title gets a score)."""
        return segment_popularity(self.global_counts, self.segments.get(segment))

    def cached(self, segment: str) -> np.ndarray:
        """:meth:`scores`, computed once per segment."""
        found = self._cache.get(segment)
        if found is None:
            found = self._cache[segment] = self.scores(segment)
        return found

    def top(self, segment: str, k: int) -> np.ndarray:
        return top_k(self.scores(segment)[None, :], k)[0][0]


@dataclass
class Recommenders:
    """The trained parts, aligned on one catalog (``content.ids``)."""

    content: ContentIndex
    popularity: Popularity
    item_factors: np.ndarray
    """Catalog x factors (float32)."""
    user_factors: dict[str, np.ndarray]
    """User id -> factors, for the users the ALS model was trained on."""
    als: AlternatingLeastSquares | None = None
    weights: HybridWeights = field(default_factory=lambda: HybridWeights())

    def als_factors(self, users: Sequence[UserContext]) -> np.ndarray:
        """Users x factors: trained factors, or solved from the user's titles (zeros when there are none)."""
        out = np.zeros((len(users), self.item_factors.shape[1]), dtype=np.float32)
        missing: list[int] = []
        for row, user in enumerate(users):
            known = self.user_factors.get(user.user_id)
            if known is not None:
                out[row] = known
            elif user.items:
                missing.append(row)
        if missing and self.als is not None:
            out[missing] = self._solve([users[r] for r in missing])
        return out

    def _solve(self, users: Sequence[UserContext]) -> np.ndarray:
        from scipy.sparse import csr_matrix

        rows, cols, vals = [], [], []
        for r, user in enumerate(users):
            for col, weight in user.items:
                rows.append(r)
                cols.append(col)
                vals.append(weight)
        items = csr_matrix((np.asarray(vals, np.float32), (rows, cols)), shape=(len(users), len(self.content.ids)))
        assert self.als is not None
        factors = self.als.recalculate_user(np.arange(len(users)), items)
        return np.asarray(factors, dtype=np.float32).reshape(len(users), -1)

    def content_scores(self, users: Sequence[UserContext]) -> np.ndarray:
        profiles = self.content.profiles([user.items for user in users])
        scores = self.content.scores(profiles)
        for row, user in enumerate(users):
            if not user.items and user.preferences:
                scores[row] = self.content.scores(self.content.text_vector(user.preferences))[0]
        return scores

    def scores(self, model: ModelName, users: Sequence[UserContext]) -> np.ndarray:
        """Users x catalog scores of one recommender (higher is better)."""
        if model == "als":
            return self.als_factors(users) @ self.item_factors.T
        if model == "content":
            return self.content_scores(users)
        if model == "popularity":
            return np.vstack([self.popularity.cached(u.segment) for u in users]) if users else \
                np.zeros((0, len(self.content.ids)), np.float32)
        if model == "hybrid":
            return self.hybrid_scores(users)
        raise ValueError(f"unknown model {model!r}: one of {', '.join(MODEL_NAMES)}")

    def hybrid_scores(self, users: Sequence[UserContext]) -> np.ndarray:
        w = self.weights
        factors = self.als_factors(users)
        popularity = np.vstack([self.popularity.cached(u.segment) for u in users])
        return hybrid(factors @ self.item_factors.T, self.content_scores(users), popularity, als_weight=w.als,
                      content_weight=w.content, popularity_weight=w.popularity, has_als=np.any(factors, axis=1))


def recommend(recommenders: Recommenders, model: ModelName, users: Sequence[UserContext], k: int, *,
              exclude: Sequence[Sequence[int]] | None = None, chunk: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """Top ``k`` catalog indices and scores per user, best first, without the user's own titles (and
    ``exclude``); a user with fewer than ``k`` other titles gets -1 (score 0) in the remaining places."""
    n = len(recommenders.content.ids)
    top = np.zeros((len(users), min(k, n)), dtype=np.int64)
    best = np.zeros((len(users), min(k, n)), dtype=np.float32)
    for start in range(0, len(users), chunk):
        part = users[start:start + chunk]
        scores = np.asarray(recommenders.scores(model, part), dtype=np.float32)
        for row, user in enumerate(part):
            seen = [col for col, _ in user.items]
            if exclude is not None:
                seen.extend(exclude[start + row])
            if seen:
                scores[row, seen] = -np.inf
        found, values = top_k(scores, k)
        excluded = ~np.isfinite(values)  # fewer unseen titles than k: the rest are marked, never recommended
        found[excluded], values[excluded] = -1, 0.0
        top[start:start + len(part)], best[start:start + len(part)] = found, values
    return top, best
