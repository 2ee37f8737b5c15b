"""Train, evaluate and package one model version from interactions, the catalog and the users (no I/O).

:func:`train_model` runs the whole daily step:

1. the content index over the catalog (TF-IDF);
2. the time-based split; ALS and popularity fitted on the training days;
3. every recommender (ALS, content, popularity, hybrid) scored on the held-out users, with the metrics of
   :mod:`batch_layer.models.evaluate`;
4. ALS and popularity fitted again on every day (what is published: the newest day matters most), then each
   user's top titles by the hybrid, with the watched title each is most like, and each title's similar titles.

The result is a manifest (parameters, data range, sizes, metrics, timings) and the arrays the registry stores.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from batch_layer.models.content import ContentIndex
from batch_layer.models.evaluate import evaluate, names
from batch_layer.models.matrix import Matrix, Weighting, build_matrix, relevant_items, seen_items, time_split
from batch_layer.models.recommenders import (
    MODEL_NAMES,
    AlsParams,
    HybridWeights,
    Popularity,
    Recommenders,
    UserContext,
    fit_als,
    recommend,
)
from warehouse_models.recommendations import GLOBAL_SEGMENT

if TYPE_CHECKING:
    import pandas as pd

    from warehouse_models.settings import Settings

logger = logging.getLogger(__name__)

Progress = Callable[[str], None]


@dataclass(frozen=True)
class UserInfo:
    segment: str = GLOBAL_SEGMENT
    preferences: str = ""


@dataclass(frozen=True)
class TrainingData:
    interactions: pd.DataFrame
    """One row per user, VOD title and day (``batch_layer.models.matrix.INTERACTION_COLUMNS``)."""
    catalog: Sequence[Mapping[str, Any]]
    """``dim_content`` rows of the VOD titles: the columns of every matrix."""
    users: Mapping[str, UserInfo]
    data_from: str
    data_to: str


@dataclass(frozen=True)
class TrainParams:
    als: AlsParams = field(default_factory=AlsParams)
    weighting: Weighting = "log"
    weights: HybridWeights = field(default_factory=HybridWeights)
    holdout_days: int = 1
    eval_users: int = 5000
    top_n: int = 50
    seed: int = 42

    @classmethod
    def from_settings(cls, settings: Settings) -> TrainParams:
        return cls(
            als=AlsParams(factors=settings.recs_factors, regularization=settings.recs_regularization,
                          iterations=settings.recs_iterations, alpha=settings.recs_alpha),
            weighting=settings.recs_weighting,
            weights=HybridWeights(als=settings.recs_als_weight, content=settings.recs_content_weight,
                                  popularity=settings.recs_popularity_weight),
            holdout_days=settings.recs_holdout_days, eval_users=settings.recs_eval_users, top_n=settings.recs_top_n)

    def describe(self) -> dict[str, Any]:
        return {"als": asdict(self.als), "weighting": self.weighting, "hybrid_weights": asdict(self.weights),
                "holdout_days": self.holdout_days, "eval_users": self.eval_users, "top_n": self.top_n}


@dataclass
class TrainedModel:
    manifest: dict[str, Any]
    arrays: dict[str, np.ndarray]
    recommenders: Recommenders


def fit_recommenders(frame: pd.DataFrame, content: ContentIndex, users: Mapping[str, UserInfo],
                     params: TrainParams) -> tuple[Matrix, Recommenders]:
    """The matrix of ``frame`` over the catalog, ALS fitted on it, popularity counted from it."""
    matrix = build_matrix(frame, params.weighting, item_ids=content.ids)
    als = fit_als(matrix, params.als)
    segments = {user: info.segment for user, info in users.items()}
    user_factors = np.asarray(als.user_factors, dtype=np.float32)
    factors = {str(u): user_factors[i] for i, u in enumerate(matrix.user_ids)}
    return matrix, Recommenders(content, Popularity.count(matrix, segments),
                                np.asarray(als.item_factors, dtype=np.float32), factors, als, params.weights)


def contexts(matrix: Matrix, users: Sequence[str], info: Mapping[str, UserInfo]) -> list[UserContext]:
    """What each listed user watched in ``matrix`` (nothing for a user outside it), with segment and genres."""
    index = matrix.user_index()
    values = matrix.values
    out = []
    for user in users:
        row = index.get(user)
        items: tuple[tuple[int, float], ...] = ()
        if row is not None:
            span = slice(values.indptr[row], values.indptr[row + 1])
            items = tuple(zip(values.indices[span].tolist(), values.data[span].tolist(), strict=True))
        details = info.get(user, UserInfo())
        out.append(UserContext(user, items, details.segment, details.preferences))
    return out


def evaluate_all(recommenders: Recommenders, train: Matrix, relevant: Mapping[str, set[str]],
                 info: Mapping[str, UserInfo], params: TrainParams) -> dict[str, dict[str, float]]:
    """Every recommender's metrics over (a seeded sample of) the held-out users."""
    users = sorted(relevant)
    if len(users) > params.eval_users:
        users = sorted(random.Random(params.seed).sample(users, params.eval_users))
    ctx = contexts(train, users, info)
    held = {u: relevant[u] for u in users}
    metrics: dict[str, dict[str, float]] = {}
    for model in MODEL_NAMES:
        top, _ = recommend(recommenders, model, ctx, 10)
        metrics[model] = evaluate(dict(zip(users, names(recommenders.content.ids, top), strict=True)), held,
                                  catalog_size=len(recommenders.content.ids))
    return metrics


def because(recommenders: Recommenders, ctx: Sequence[UserContext], top: np.ndarray) -> np.ndarray:
    """Per recommended title, the user's watched title most like it by item factors (-1 when none)."""
    factors = recommenders.item_factors
    norms = np.linalg.norm(factors, axis=1)
    norms[norms == 0] = 1.0
    normed = factors / norms[:, None]
    out = np.full(top.shape, -1, dtype=np.int64)
    for row, user in enumerate(ctx):
        if not user.items:
            continue
        seen = np.fromiter((col for col, _ in user.items), dtype=np.int64)
        places = top[row] >= 0
        sims = normed[top[row][places]] @ normed[seen].T
        out[row][places] = seen[np.argmax(sims, axis=1)]
    return out


def train_model(data: TrainingData, params: TrainParams, *, progress: Progress = logger.info) -> TrainedModel:
    """The daily step on data that is already read; see the module doc."""
    timings: dict[str, float] = {}
    started = time.monotonic()

    def lap(name: str) -> None:
        nonlocal started
        now = time.monotonic()
        timings[name] = round(now - started, 3)
        started = now

    content = ContentIndex.build(data.catalog)
    lap("content_index_s")
    progress(f"content index: {len(content.ids)} titles, {len(content.vectorizer.vocabulary_)} terms")
    split = time_split(data.interactions, params.holdout_days)
    train_matrix, held_out = fit_recommenders(split.train, content, data.users, params)
    relevant = relevant_items(split.test, seen_items(train_matrix))
    lap("evaluation_fit_s")
    progress(f"evaluation model: {train_matrix.values.shape[0]} users, {train_matrix.values.nnz} interactions "
             f"before {split.split_day}; {len(relevant)} users with held-out titles")
    metrics = evaluate_all(held_out, train_matrix, relevant, data.users, params)
    lap("evaluation_s")
    progress("held-out metrics: " + "; ".join(
        f"{m} p@10 {v['precision_at_10']:.4f} ndcg@10 {v['ndcg_at_10']:.4f}" for m, v in metrics.items()))
    matrix, final = fit_recommenders(data.interactions, content, data.users, params)
    lap("fit_s")
    progress(f"final model: {matrix.values.shape[0]} users x {matrix.values.shape[1]} titles, "
             f"{matrix.values.nnz} interactions, fitted in {timings['fit_s']:.1f} s")
    user_ids = [str(u) for u in matrix.user_ids]
    ctx = contexts(matrix, user_ids, data.users)
    top, scores = recommend(final, "hybrid", ctx, params.top_n)
    reasons = because(final, ctx, top)
    lap("recommend_s")
    similar, similarity = content.similar(params.top_n)
    lap("similar_s")
    progress(f"top {params.top_n} for {len(user_ids)} users in {timings['recommend_s']:.1f} s, similar titles in "
             f"{timings['similar_s']:.1f} s")
    arrays = _arrays(matrix, final, data.users, top, scores, reasons, similar, similarity, data.catalog)
    genres, affinity = genre_affinity(matrix, data.catalog)
    arrays.update({"affinity_users": arrays["user_ids"], "affinity_genres": np.asarray(genres), "affinity": affinity})
    manifest = {
        "data_from": data.data_from, "data_to": data.data_to, "split_day": str(split.split_day),
        "params": params.describe(),
        "sizes": {"users": int(matrix.values.shape[0]), "titles": int(matrix.values.shape[1]),
                  "interactions": int(matrix.values.nnz), "rows_read": len(data.interactions),
                  "held_out_users": len(relevant)},
        "metrics": metrics, "timings": timings,
    }
    return TrainedModel(manifest, arrays, final)


def genre_affinity(matrix: Matrix, catalog: Sequence[Mapping[str, Any]]) -> tuple[list[str], np.ndarray]:
    """Genre names and users x genres: each user's share of weighted watching by genre (a title counts fully for
    its main genre and half for its second), smoothed towards the shares of all users by a prior worth half the
    median user's watching."""
    from scipy.sparse import csr_matrix

    genres = sorted({g for row in catalog for g in (row.get("genre_primary"), row.get("genre_secondary")) if g})
    index = {g: i for i, g in enumerate(genres)}
    rows, cols, vals = [], [], []
    for item, row in enumerate(catalog):
        for genre, weight in ((row.get("genre_primary"), 1.0), (row.get("genre_secondary"), 0.5)):
            if genre in index:
                rows.append(item)
                cols.append(index[genre])
                vals.append(weight)
    by_genre = csr_matrix((np.asarray(vals, np.float32), (rows, cols)), shape=(len(catalog), len(genres)))
    totals = np.asarray(matrix.values @ by_genre.toarray(), dtype=np.float32)
    sums = totals.sum(axis=1, keepdims=True)
    # Smoothed towards everyone's shares by a prior worth half the median user's watching: a user seen twice is
    # not a fan of whatever those two titles were.
    overall = totals.sum(axis=0, keepdims=True) / max(float(totals.sum()), 1e-9)
    prior = 0.5 * float(np.median(sums)) if sums.size else 0.0
    return genres, (totals + prior * overall) / np.maximum(sums + prior, 1e-9)


def _arrays(matrix: Matrix, final: Recommenders, users: Mapping[str, UserInfo], top: np.ndarray, scores: np.ndarray,
            reasons: np.ndarray, similar: np.ndarray, similarity: np.ndarray,
            catalog: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
    tfidf = final.content.matrix
    segments = sorted(final.popularity.segments)
    vocabulary = final.content.vectorizer.vocabulary_
    terms = sorted(vocabulary, key=vocabulary.__getitem__)
    return {
        "item_ids": final.content.ids.astype(str),
        "item_titles": np.asarray([str(r.get("content_title") or "") for r in catalog]),
        "item_durations_s": np.asarray([float(r["duration_minutes"]) * 60 if r.get("duration_minutes") else np.nan
                                        for r in catalog], dtype=np.float64),
        "item_factors": final.item_factors,
        "user_ids": matrix.user_ids.astype(str),
        "user_factors": np.vstack([final.user_factors[str(u)] for u in matrix.user_ids]) if len(matrix.user_ids)
        else np.zeros((0, final.item_factors.shape[1]), np.float32),
        "user_segments": np.asarray([users.get(str(u), UserInfo()).segment for u in matrix.user_ids]),
        "seen_indptr": matrix.values.indptr.astype(np.int64), "seen_indices": matrix.values.indices.astype(np.int64),
        "seen_values": matrix.values.data.astype(np.float32),
        "rec_items": top, "rec_scores": scores, "rec_because": reasons,
        "similar_items": similar, "similar_scores": similarity,
        "tfidf_data": tfidf.data, "tfidf_indices": tfidf.indices.astype(np.int64),
        "tfidf_indptr": tfidf.indptr.astype(np.int64), "tfidf_terms": np.asarray(terms),
        "tfidf_idf": final.content.vectorizer.idf_.astype(np.float32),
        "popularity_global": final.popularity.global_counts,
        "popularity_segments": np.asarray(segments),
        "popularity_counts": np.vstack([final.popularity.segments[s] for s in segments]) if segments
        else np.zeros((0, len(final.content.ids)), np.float32),
    }
