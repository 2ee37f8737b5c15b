"""Live re-ranking (pure): the published model's bundle round-trips, and what a user just watched or searched
changes the answer, with reasons."""

from __future__ import annotations

import json

import numpy as np
import pytest

from batch_layer.models.publish import bundle_bytes, similar_entries, user_entries
from serving.views.recommendations import ModelBundle, UserModel, Weights, rerank
from tests.unit.test_recommendations import _small_world

WEIGHTS = Weights(als=0.5, content=0.4, popularity=1.0, live=1.0)


@pytest.fixture(scope="module")
def published():
    world, trained, _ = _small_world()
    arrays = trained.arrays
    bundle = ModelBundle.from_bytes("m1", bundle_bytes(arrays), json.dumps({"data_to": "2026-11-08"}))
    users = {user: UserModel.parse(fields) for user, fields in user_entries(arrays)}
    similar = {c: [(i, s) for i, s in json.loads(v)] for c, v in similar_entries(arrays)}
    return world, bundle, users, similar


def _genres(world, content_id):
    title = next(c for c in world.titles if c.content_id == content_id)
    return {title.genre_primary, title.genre_secondary}


def test_the_bundle_round_trips_what_the_model_published(published):
    world, bundle, users, similar = published
    assert len(bundle.ids) == len(world.titles) and bundle.factors.dtype == np.float32
    user = users[world.users[0].user_id]
    assert user is not None and user.factors is not None and len(user.recs) == 20
    assert bundle.popularity(user.segment or "*").shape == (len(bundle.ids),)


def test_a_watch_steers_a_known_user_and_the_watched_title_is_left_out(published):
    world, bundle, users, similar = published
    user_id = next(u.user_id for u in world.users if "horror" not in u.favourite_genres)
    user = users[user_id]
    assert user is not None
    before = rerank(bundle, user=user, segment=user.segment or "*", recent=[], similar={}, searches=(),
                    weights=WEIGHTS, n=10)
    assert not {r.content_id for r in before} & set(user.seen)
    horror = next(c.content_id for c in world.titles if c.genre_primary == "horror" and c.content_id not in user.seen)
    after = rerank(bundle, user=user, segment=user.segment or "*", recent=[horror],
                   similar={horror: similar[horror]}, searches=(), weights=WEIGHTS, n=10)
    assert [r.content_id for r in after] != [r.content_id for r in before]
    assert horror not in {r.content_id for r in after}
    because = [r for r in after if r.reason.get("content_id") == horror]
    assert because and all(r.reason["kind"] == "because_you_watched" for r in because)
    assert sum("horror" in _genres(world, r.content_id) for r in after) > \
        sum("horror" in _genres(world, r.content_id) for r in before)


def test_a_new_user_is_served_from_what_they_just_watched_and_searched(published):
    world, bundle, users, similar = published
    cold = rerank(bundle, user=None, segment="*", recent=[], similar={}, searches=(), weights=WEIGHTS, n=5)
    assert len(cold) == 5 and {r.reason["kind"] for r in cold} <= {"trending_in_your_country", "popular"}
    scifi = next(c.content_id for c in world.titles if c.genre_primary == "scifi")
    watched = rerank(bundle, user=None, segment="*", recent=[scifi], similar={scifi: similar[scifi]}, searches=(),
                     weights=WEIGHTS, n=10)
    assert sum("scifi" in _genres(world, r.content_id) for r in watched) >= 5
    searched = rerank(bundle, user=None, segment="*", recent=[], similar={},
                      searches=["haunted cabin curse"], weights=WEIGHTS, n=10)
    matches = [r for r in searched if r.reason["kind"] == "matches_your_search"]
    assert matches and all(r.reason["query"] == "haunted cabin curse" for r in matches)
    assert all("horror" in _genres(world, r.content_id) for r in matches)
    nothing = rerank(bundle, user=None, segment="*", recent=[], similar={}, searches=["zzz qqq"], weights=WEIGHTS,
                     n=3)
    assert [r.content_id for r in nothing] == [r.content_id for r in cold[:3]]
