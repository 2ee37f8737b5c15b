"""Recommendation models' pure parts: strength and matrix, the time split, metrics, content index, the gate, the
registry, and the planted taste of a small simulated world recovered."""

from __future__ import annotations

import math
from datetime import date, datetime, timezone
from functools import lru_cache

import numpy as np
import pandas as pd
import pytest

from batch_layer.models.content import ContentIndex, top_k
from batch_layer.models.evaluate import (
    average_precision_at,
    evaluate,
    gate,
    names,
    ndcg_at,
    precision_at,
    recall_at,
)
from batch_layer.models.matrix import build_matrix, relevant_items, seen_items, strength, time_split
from batch_layer.models.recommenders import UserContext, recommend
from batch_layer.models.registry import Registry, RegistryError
from batch_layer.models.train import TrainedModel, TrainingData, TrainParams, UserInfo, contexts, train_model
from simulator.interactions import taste_interactions
from simulator.world import World, build_world, content_upsert
from warehouse_models.recommendations import hybrid, query_vector, segment_of, segment_popularity, unit

D1, D2, D3 = date(2026, 11, 1), date(2026, 11, 2), date(2026, 11, 3)


def _frame(rows: list[tuple[str, str, date, float, float | None]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["user_id", "content_id", "event_date", "watch_seconds", "completion_pct"])


def test_strength_is_watch_minutes_doubled_by_completion():
    got = strength(np.array([600.0, 600.0, 0.0, np.nan]), np.array([100.0, np.nan, 50.0, 80.0]))
    assert got.tolist() == [20.0, 10.0, 0.0, 0.0]


def test_matrix_sums_days_keeps_best_completion_and_fixes_catalog_columns():
    frame = _frame([("u1", "a", D1, 60.0, None), ("u1", "a", D2, 60.0, 100.0), ("u2", "b", D1, 120.0, 50.0),
                    ("u2", "zzz", D1, 600.0, 100.0), ("u3", "a", D1, 0.0, None)])
    m = build_matrix(frame, "none", item_ids=np.array(["a", "b", "c"], dtype=object))
    assert m.item_ids.tolist() == ["a", "b", "c"]
    assert m.user_ids.tolist() == ["u1", "u2"]  # zzz is outside the catalog; u3 never played
    dense = m.values.toarray()
    assert dense[0].tolist() == pytest.approx([4.0, 0.0, 0.0])  # 2 minutes x (1 + 1.0)
    assert dense[1].tolist() == pytest.approx([0.0, 3.0, 0.0])  # 2 minutes x (1 + 0.5)
    logged = build_matrix(frame, "log", item_ids=np.array(["a", "b", "c"], dtype=object)).values.toarray()
    assert logged[0, 0] == pytest.approx(math.log1p(4.0))
    assert seen_items(m) == {"u1": {"a"}, "u2": {"b"}}


def test_bm25_weighting_damps_a_title_everybody_watched():
    rows = [(f"u{i}", "hit", D1, 600.0, 100.0) for i in range(20)] + [("u0", "niche", D1, 600.0, 100.0)]
    values = build_matrix(_frame(rows), "bm25").values.toarray()
    items = build_matrix(_frame(rows), "none").item_ids.tolist()
    assert values[0, items.index("niche")] > values[0, items.index("hit")]


def test_time_split_holds_out_the_newest_days_and_relevance_skips_known_titles():
    frame = _frame([("u1", "a", D1, 600.0, 90.0), ("u1", "a", D3, 600.0, 90.0), ("u1", "b", D3, 600.0, 90.0),
                    ("u1", "c", D3, 30.0, 10.0), ("u2", "b", D2, 600.0, 90.0), ("u3", "d", D3, 90.0, None)])
    split = time_split(frame, 1)
    assert split.split_day == D3
    assert set(split.train["event_date"]) == {D1, D2} and set(split.test["event_date"]) == {D3}
    train = build_matrix(split.train, "log")
    # a was watched before; c for only 30 s; u3 is new to the model and still counts
    assert relevant_items(split.test, seen_items(train)) == {"u1": {"b"}, "u3": {"d"}}
    with pytest.raises(ValueError, match="leaves nothing to train on"):
        time_split(frame, 3)


def test_ranking_metrics_on_a_hand_computed_list():
    recommended = ["x", "a", "y", "b", "z"]
    relevant = {"a", "b", "c"}
    assert precision_at(recommended, relevant, 5) == pytest.approx(2 / 5)
    assert recall_at(recommended, relevant, 5) == pytest.approx(2 / 3)
    assert average_precision_at(recommended, relevant, 5) == pytest.approx((1 / 2 + 2 / 4) / 3)
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    ideal = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert ndcg_at(recommended, relevant, 5) == pytest.approx(dcg / ideal)
    metrics = evaluate({"u1": recommended}, {"u1": relevant, "u2": {"q"}}, catalog_size=10, k=5)
    assert metrics["precision_at_5"] == pytest.approx(1 / 5)  # u2 got nothing: zeros count
    assert metrics["catalog_coverage"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="no held-out user"):
        evaluate({}, {"u1": set()}, catalog_size=1)


def test_gate_refuses_a_model_worse_than_the_margin_allows():
    assert gate({"ndcg_at_10": 0.10}, None, 0.05).publish
    assert gate({"ndcg_at_10": 0.096}, {"ndcg_at_10": 0.10}, 0.05).publish
    decision = gate({"ndcg_at_10": 0.09}, {"ndcg_at_10": 0.10}, 0.05)
    assert not decision.publish and "current model stays" in decision.reason


def test_content_index_finds_the_same_genre_and_a_query_matches_sklearn():
    rows = [{"content_id": "s1", "content_title": "Orbit", "description": "A spaceship and an android.",
             "genre_primary": "scifi", "cast_members": ["Ada Stone"], "director": "Kim Vale"},
            {"content_id": "s2", "content_title": "Nebula", "description": "Androids on a colony spaceship.",
             "genre_primary": "scifi", "cast_members": ["Ada Stone"], "director": "Kim Vale"},
            {"content_id": "r1", "content_title": "Heart", "description": "Love in a vineyard in summer.",
             "genre_primary": "romance", "cast_members": ["Ada Brook"], "director": "Lou Park"}]
    index = ContentIndex.build(rows)
    similar, sims = index.similar(2)
    assert index.ids[similar[0, 0]] == "s2" and sims[0, 0] > sims[0, 1]
    text = "Love LOVE spaceship unknownword"
    idx, weights = query_vector(text, index.vectorizer.vocabulary_, index.vectorizer.idf_)
    dense = np.zeros(len(index.vectorizer.vocabulary_), dtype=np.float32)
    dense[idx] = weights
    np.testing.assert_allclose(dense, index.text_vector(text).toarray()[0], atol=1e-6)


def test_scores_scale_and_mix_by_one_definition():
    assert unit([2.0, 4.0, 3.0]).tolist() == pytest.approx([0.0, 1.0, 0.5])
    assert unit([1.0, 1.0]).tolist() == [0.0, 0.0]
    assert unit([1.0, -np.inf, 3.0])[[0, 2]].tolist() == pytest.approx([0.0, 1.0])
    cold = hybrid(None, [0.0, 1.0], [10.0, 0.0], als_weight=0.5, content_weight=0.4, popularity_weight=1.0)
    assert cold.tolist() == pytest.approx([1.0, 0.4])
    warm = hybrid([1.0, 0.0], [0.0, 1.0], [10.0, 0.0], als_weight=0.5, content_weight=0.4, popularity_weight=1.0)
    assert warm.tolist() == pytest.approx([1.5, 0.4])
    rows = unit(np.array([[1.0, 3.0], [5.0, 5.0]]))
    assert rows.tolist() == [[0.0, 1.0], [0.0, 0.0]]  # each row on its own
    mixed = hybrid(np.array([[1.0, 0.0], [1.0, 0.0]]), np.zeros((2, 2)), np.zeros((2, 2)), als_weight=0.5,
                   content_weight=0.4, popularity_weight=1.0, has_als=[True, False])
    np.testing.assert_allclose(mixed, [[0.5, 0.0], [0.0, 0.0]])
    smoothed = segment_popularity([10.0, 0.0, 10.0], [0.0, 0.0, 3.0])
    assert smoothed[2] > smoothed[0] > smoothed[1]
    idx, _ = top_k(np.array([[0.1, 0.5, 0.5, 0.9]]), 3)
    assert idx.tolist() == [[3, 1, 2]]


def test_a_user_with_fewer_other_titles_than_places_gets_empty_places_not_seen_titles():
    world, trained, _ = _small_world()
    n = len(trained.recommenders.content.ids)
    everything = UserContext("binge", tuple((i, 1.0) for i in range(n - 2)), "*", "")
    top, scores = recommend(trained.recommenders, "hybrid", [everything], 5)
    assert sorted(top[0][:2].tolist()) == [n - 2, n - 1] and top[0][2:].tolist() == [-1, -1, -1]
    assert np.isfinite(scores).all()
    ids = trained.recommenders.content.ids
    assert names(ids, top) == [[str(ids[i]) for i in top[0][:2]]]


def test_registry_keeps_versions_and_rolls_back_along_the_publication_chain(tmp_path):
    registry = Registry(tmp_path)
    for version in ("m1", "m2", "m3"):
        registry.save(version, {"metrics": {"hybrid": {"ndcg_at_10": 0.1}}}, {"x": np.arange(3)})
    assert [v.version for v in registry.versions()] == ["m1", "m2", "m3"]
    assert registry.get("m2").arrays()["x"].tolist() == [0, 1, 2]
    assert registry.current() is None and registry.previous_published() is None
    registry.set_current("m1", action="published")
    registry.set_current("m2", action="published")
    assert registry.previous_published() == "m1"
    registry.set_current("m2", action="promoted")  # the current one pushed again (Redis lost its keys)
    assert registry.previous_published() == "m1"  # still goes back, not to itself
    registry.set_current("m1", action="rolled_back")
    assert registry.previous_published() is None  # m1 was the first: no toggling back to m2
    with pytest.raises(RegistryError, match="no model version 'nope'"):
        registry.get("nope")


@lru_cache(maxsize=1)
def _small_world() -> tuple[World, TrainedModel, TrainingData]:
    world = build_world(seed=3, users=4000, titles=600, channels=3)
    frame = pd.DataFrame(taste_interactions(world, start=D1, days=8, watches_per_user=14))
    catalog = [content_upsert(c, event_id="e", at=datetime(2026, 11, 1, tzinfo=timezone.utc)) for c in world.titles]
    users = {u.user_id: UserInfo(segment_of(u.country, u.device.device_type), " ".join(u.stated_preferences))
             for u in world.users}
    data = TrainingData(frame, catalog, users, "2026-11-01", "2026-11-08")
    return world, train_model(data, TrainParams(holdout_days=2, top_n=20), progress=lambda _: None), data


@pytest.mark.timeout(60)
def test_the_hybrid_recovers_the_planted_taste_and_beats_popularity():
    world, trained, data = _small_world()
    metrics = trained.manifest["metrics"]
    assert metrics["hybrid"]["precision_at_10"] > metrics["popularity"]["precision_at_10"]
    assert metrics["hybrid"]["ndcg_at_10"] > metrics["popularity"]["ndcg_at_10"]
    # The published lists lean on each user's true favourite genres far more than the popular titles do.
    genres = {c.content_id: {c.genre_primary, c.genre_secondary} for c in world.titles}
    users = world.users_by_id
    ids = trained.arrays["item_ids"]
    rec_share, pop_share = [], []
    popular = [str(ids[i]) for i in np.argsort(-trained.arrays["popularity_global"])[:10]]
    for row, user_id in enumerate(trained.arrays["user_ids"][:500]):
        liked = set(users[str(user_id)].favourite_genres)
        top = [str(ids[i]) for i in trained.arrays["rec_items"][row][:10]]
        rec_share.append(np.mean([bool(genres[c] & liked) for c in top]))
        pop_share.append(np.mean([bool(genres[c] & liked) for c in popular]))
    assert np.mean(rec_share) > 1.5 * np.mean(pop_share)
    # A user the model never saw, with stated genres only, is served from them and their segment.
    stranger = UserContext("new-user", (), segment_of("DE", "tv"), "horror horror")
    top, _ = recommend(trained.recommenders, "hybrid", [stranger], 10)
    assert sum("horror" in genres[str(ids[i])] for i in top[0]) >= 3
    # Each user's genre affinity is shares of their watching, and their planted favourites lead it.
    affinity, genre_names = trained.arrays["affinity"], trained.arrays["affinity_genres"].tolist()
    np.testing.assert_allclose(affinity.sum(axis=1), 1.0, rtol=1e-5)
    leads = [genre_names[int(np.argmax(affinity[row]))] in users[str(u)].favourite_genres
             for row, u in enumerate(trained.arrays["affinity_users"][:500])]
    assert np.mean(leads) > 0.8
    empty = build_matrix(data.interactions.head(0), "log", item_ids=ids.astype(object))
    assert contexts(empty, ["x"], {})[0].items == ()
