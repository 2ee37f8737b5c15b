"""Live recommendations: the published model's candidates re-ranked at request time with what the user just did.

The daily model (``batch_layer.models``) publishes per user a top list, factors and the titles watched, and per
version a bundle of the catalog side (item factors, TF-IDF rows, popularity per segment): see
:mod:`batch_layer.models.publish` for the layout. An API process loads a version's bundle once
(:class:`ModelBundle`, cached by version) and answers each request in two Redis round trips: the model pointer
with the speed layer's recent titles, then the user's hash with the similar lists of the recent titles.

:func:`rerank` is the pure re-ranking:

- **candidates**: the user's published top list, the titles similar to each recently watched title, the user's
  segment's most popular titles, and the titles closest to each recent search;
- **factors**: the user's ALS factors steered towards the factors of the recently watched titles (by
  ``recs_live_weight``); a user the model never saw gets the factors of what they just watched;
- **content**: the user's taste in TF-IDF space, from the titles watched (training weights), the recent titles
  and the recent searches;
- **score**: the hybrid of :func:`warehouse_models.recommendations.hybrid` (ALS, content and segment popularity,
  each scaled over the candidates); the titles watched in the training range and the ones just watched (finished
  or not: those are the resume rail's) are left out;
- **reason**: "matches your search" when a recent search is close to the title; else "because you watched" a
  title just watched when the title is among its similar titles, or the watched title closest in content when it
  is close; else "trending in your country" when the title is among the most watched of the user's segment (one
  the model knows); else "popular".
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from scipy.sparse import csr_matrix

from warehouse_models.recommendations import BUNDLE_ARRAYS, hybrid, query_vector, segment_popularity
from warehouse_models.redis_io import text
from warehouse_models.redis_keys import KeyLayout
from warehouse_models.redis_plan import Command, Plan

SEGMENT_TOP = 50
"""Candidates from the user's segment's most watched titles (and the bar for "trending in your country")."""

SIMILAR_PER_RECENT = 20
SEARCH_CANDIDATES = 20
RECENT_FOR_LIVE = 5
"""The newest titles just watched that steer the live answer."""
SEARCHES_FOR_LIVE = 3
"""The newest searches that steer it."""

SEARCH_REASON_MIN = 0.2
"""Cosine of a title with a recent search from which the search is the reason."""

WATCHED_REASON_MIN = 0.3
"""Content cosine of two titles from which the watched one is the reason."""


@dataclass
class ModelBundle:
    """One model version's catalog side, as an API process keeps it in memory."""

    version: str
    meta: dict[str, Any]
    ids: np.ndarray
    titles: np.ndarray
    factors: np.ndarray
    normed: np.ndarray
    tfidf: csr_matrix
    vocabulary: dict[str, int]
    idf: np.ndarray
    popularity_global: np.ndarray
    popularity_segments: dict[str, np.ndarray]
    index: dict[str, int] = field(default_factory=dict)
    _segment_scores: dict[str, np.ndarray] = field(default_factory=dict)
    _segment_top: dict[str, set[int]] = field(default_factory=dict)

    @classmethod
    def from_bytes(cls, version: str, bundle: bytes, meta: str | bytes) -> ModelBundle:
        with np.load(io.BytesIO(bundle), allow_pickle=False) as data:
            arrays = {name: data[name] for name in BUNDLE_ARRAYS}
        factors = arrays["item_factors"].astype(np.float32)
        norms = np.linalg.norm(factors, axis=1)
        norms[norms == 0] = 1.0
        n = len(arrays["item_ids"])
        tfidf = csr_matrix((arrays["tfidf_data"], arrays["tfidf_indices"], arrays["tfidf_indptr"]),
                           shape=(n, len(arrays["tfidf_terms"])))
        ids = arrays["item_ids"].astype(str)
        return cls(
            version=version, meta=json.loads(meta), ids=ids, titles=arrays["item_titles"].astype(str),
            factors=factors, normed=factors / norms[:, None], tfidf=tfidf,
            vocabulary={str(t): i for i, t in enumerate(arrays["tfidf_terms"])}, idf=arrays["tfidf_idf"],
            popularity_global=arrays["popularity_global"],
            popularity_segments=dict(zip((str(s) for s in arrays["popularity_segments"]),
                                         arrays["popularity_counts"], strict=True)),
            index={c: i for i, c in enumerate(ids)})

    def popularity(self, segment: str) -> np.ndarray:
        found = self._segment_scores.get(segment)
        if found is None:
            found = segment_popularity(self.popularity_global, self.popularity_segments.get(segment))
            self._segment_scores[segment] = found
        return found

    def segment_top(self, segment: str) -> set[int]:
        found = self._segment_top.get(segment)
        if found is None:
            scores = self.popularity(segment)
            k = min(SEGMENT_TOP, len(scores))
            found = set(np.argpartition(-scores, k - 1)[:k].tolist()) if k else set()
            self._segment_top[segment] = found
        return found


@dataclass(frozen=True)
class UserModel:
    """What the published model holds for one user."""

    factors: np.ndarray | None
    seen: dict[str, float]
    recs: list[tuple[str, float, str]]
    segment: str | None

    @classmethod
    def parse(cls, fields: Mapping[Any, Any]) -> UserModel | None:
        if not fields:
            return None
        values = {text(k): v for k, v in fields.items()}
        raw = values.get("factors")
        return cls(
            factors=np.frombuffer(raw, dtype=np.float32).copy() if raw else None,
            seen={str(c): float(w) for c, w in json.loads(values.get("seen") or "[]")},
            recs=[(str(c), float(s), str(b)) for c, s, b in json.loads(values.get("recs") or "[]")],
            segment=text(values["segment"]) if values.get("segment") else None,
        )


@dataclass(frozen=True)
class Weights:
    als: float
    content: float
    popularity: float
    live: float


@dataclass(frozen=True)
class Recommendation:
    content_id: str
    title: str
    score: float
    reason: dict[str, str]


def _unit_vector(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


def rerank(bundle: ModelBundle, *, user: UserModel | None, segment: str, recent: Sequence[str],
           similar: Mapping[str, Sequence[tuple[str, float]]], searches: Sequence[str], weights: Weights,
           n: int) -> list[Recommendation]:
    """The live top ``n`` (see the module doc). ``recent``: titles just watched, newest first: all are left out,
    the newest :data:`RECENT_FOR_LIVE` steer."""
    index = bundle.index
    all_recent = [index[c] for c in recent if c in index]
    recent_idx = all_recent[:RECENT_FOR_LIVE]
    seen = {index[c]: w for c, w in (user.seen.items() if user else ()) if c in index}
    excluded = set(seen) | set(all_recent)
    queries = [(q, *query_vector(q, bundle.vocabulary, bundle.idf)) for q in searches]
    queries = [(q, idx, w) for q, idx, w in queries if len(idx)]
    candidates: set[int] = set()
    if user is not None:
        candidates.update(index[c] for c, _, _ in user.recs if c in index)
    like_recent: dict[int, int] = {}
    for content_id in recent[:RECENT_FOR_LIVE]:
        for c, _ in similar.get(content_id, ())[:SIMILAR_PER_RECENT]:
            if c in index and content_id in index:
                like_recent.setdefault(index[c], index[content_id])
    candidates.update(like_recent)
    candidates.update(bundle.segment_top(segment))
    search_cos = np.zeros(len(bundle.ids), dtype=np.float32)
    search_by = np.full(len(bundle.ids), -1, dtype=np.int64)
    for q, (_, idx, w) in enumerate(queries):
        cos = np.asarray(bundle.tfidf[:, idx] @ w).ravel()
        top = np.argpartition(-cos, min(SEARCH_CANDIDATES, len(cos)) - 1)[:SEARCH_CANDIDATES]
        candidates.update(int(i) for i in top if cos[i] > 0)
        better = cos > search_cos
        search_cos[better], search_by[better] = cos[better], q
    pool = np.fromiter(sorted(candidates - excluded), dtype=np.int64)
    if pool.size == 0:
        return []
    # ALS: the user's factors steered by what they just watched (or those alone for a user new to the model).
    live = bundle.normed[recent_idx].mean(axis=0) if recent_idx else None
    factors = _unit_vector(user.factors) if user is not None and user.factors is not None else None
    if live is not None:
        factors = _unit_vector(live) * weights.live + (factors if factors is not None else 0.0)
    als = bundle.factors[pool] @ factors if factors is not None else None
    # Content: the taste in TF-IDF space from the watched titles, the recent ones and the searches.
    profile = np.zeros(bundle.tfidf.shape[1], dtype=np.float32)
    if seen:
        rows = np.fromiter(seen, dtype=np.int64)
        profile += np.asarray(bundle.tfidf[rows].T @ np.fromiter(seen.values(), dtype=np.float32)).ravel()
    top_weight = max(seen.values(), default=1.0)
    if recent_idx:
        profile += weights.live * top_weight * np.asarray(bundle.tfidf[recent_idx].sum(axis=0)).ravel()
    for _, idx, w in queries:
        profile[idx] += weights.live * top_weight * w
    content = np.asarray(bundle.tfidf[pool] @ _unit_vector(profile)).ravel()
    scores = hybrid(als, content, bundle.popularity(segment)[pool], als_weight=weights.als,
                    content_weight=weights.content, popularity_weight=weights.popularity)
    order = np.argsort(-scores, kind="stable")[:n]
    watched = np.fromiter(list(dict.fromkeys([*recent_idx, *seen])), dtype=np.int64)
    segment_top = bundle.segment_top(segment) if segment in bundle.popularity_segments else set()
    out = []
    for position in order:
        item = int(pool[position])
        out.append(Recommendation(str(bundle.ids[item]), str(bundle.titles[item]), round(float(scores[position]), 5),
                                  _reason(bundle, item, watched, like_recent, search_cos, search_by, queries,
                                          segment_top)))
    return out


def _because(bundle: ModelBundle, source: int) -> dict[str, str]:
    return {"kind": "because_you_watched", "content_id": str(bundle.ids[source]), "title": str(bundle.titles[source])}


def _reason(bundle: ModelBundle, item: int, watched: np.ndarray, like_recent: Mapping[int, int],
            search_cos: np.ndarray, search_by: np.ndarray, queries: Sequence[tuple[str, Any, Any]],
            segment_top: set[int]) -> dict[str, str]:
    if search_by[item] >= 0 and search_cos[item] >= SEARCH_REASON_MIN:
        return {"kind": "matches_your_search", "query": queries[int(search_by[item])][0]}
    if item in like_recent:
        return _because(bundle, like_recent[item])
    if watched.size:
        sims = np.asarray((bundle.tfidf[watched] @ bundle.tfidf[item].T).todense()).ravel()
        best = int(np.argmax(sims))
        if sims[best] >= WATCHED_REASON_MIN:
            return _because(bundle, int(watched[best]))
    if item in segment_top:
        return {"kind": "trending_in_your_country"}
    return {"kind": "popular"}


# --- read plans ----------------------------------------------------------------------------------------------
def model_version(keys: KeyLayout) -> Plan[str | None]:
    (value,) = yield [Command("GET", keys.model_pointer())]
    return text(value) if value is not None else None


def load_bundle(keys: KeyLayout, version: str) -> Plan[ModelBundle | None]:
    bundle, meta = yield [Command("HGET", keys.model_items(version), "bundle"),
                          Command("HGET", keys.model_items(version), "meta")]
    if bundle is None or meta is None:
        return None
    return ModelBundle.from_bytes(version, bundle, meta)


def user_model(keys: KeyLayout, version: str, user_id: str,
               similar_of: Sequence[str]) -> Plan[tuple[UserModel | None, dict[str, list[tuple[str, float]]]]]:
    """The user's hash in the version and the similar lists of the given titles, in one round trip."""
    replies = yield [Command("HGETALL", keys.model_user(version, user_id)),
                     *(Command("GET", keys.model_similar(version, c)) for c in similar_of)]
    similar = {c: [(str(i), float(s)) for i, s in json.loads(v)]
               for c, v in zip(similar_of, replies[1:], strict=True) if v is not None}
    return UserModel.parse(replies[0] or {}), similar


def similar_titles(keys: KeyLayout, version: str, content_id: str) -> Plan[list[tuple[str, float]] | None]:
    (value,) = yield [Command("GET", keys.model_similar(version, content_id))]
    return [(str(c), float(s)) for c, s in json.loads(value)] if value is not None else None


def model_as_of(bundle: ModelBundle) -> datetime | None:
    """The end of the model's data range (the day after ``data_to``, 00:00 UTC)."""
    from datetime import date, time, timedelta, timezone

    data_to = bundle.meta.get("data_to")
    if not data_to:
        return None
    return datetime.combine(date.fromisoformat(str(data_to)) + timedelta(days=1), time(), tzinfo=timezone.utc)


BATCH_VARIANT = "batch"
"""The variant served the daily list as published (no live re-ranking); every other variant is re-ranked live."""


def published_list(bundle: ModelBundle, *, user: UserModel | None, segment: str, n: int) -> list[Recommendation]:
    """The ``batch`` variant's answer: the user's published list as it is (the segment's most watched for a user
    the model does not know), with the reason the daily run found."""
    segment_top = bundle.segment_top(segment) if segment in bundle.popularity_segments else set()
    out: list[Recommendation] = []
    if user is not None and user.recs:
        for content_id, score, because in user.recs[:n]:
            item = bundle.index.get(content_id)
            if item is None:
                continue
            if because and because in bundle.index:
                reason = _because(bundle, bundle.index[because])
            elif item in segment_top:
                reason = {"kind": "trending_in_your_country"}
            else:
                reason = {"kind": "popular"}
            out.append(Recommendation(content_id, str(bundle.titles[item]), score, reason))
        return out
    scores = bundle.popularity(segment)
    for item in np.argsort(-scores, kind="stable")[:n]:
        out.append(Recommendation(str(bundle.ids[item]), str(bundle.titles[item]), round(float(scores[item]), 5),
                                  {"kind": "trending_in_your_country" if int(item) in segment_top else "popular"}))
    return out
