"""Release notifications' pure parts: which catalog records are releases, and who matches a release."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np

from speed_layer.releases import releases
from warehouse_models.recommendations import matching_users, release_affinity

MS = int(datetime(2026, 12, 1, 12, tzinfo=timezone.utc).timestamp() * 1000)


def _row(content_id: str, released: str | None, ms: int = MS) -> dict[str, object]:
    return {"content_id": content_id, "content_title": content_id.upper(), "genre_primary": "horror",
            "genre_secondary": None, "release_date": released, "event_time_ms": ms}


def test_a_release_is_a_recent_or_announced_title_once():
    rows = [_row("new", "2026-11-20"), _row("new", "2026-11-20", MS - 1000), _row("old", "1999-01-01"),
            _row("announced", "2027-01-15"), _row("edge", "2026-11-01"), _row("undated", None)]
    found = releases(rows, max_age_days=30)
    assert sorted(found) == ["announced", "edge", "new"]
    assert found["new"]["event_time_ms"] == MS - 1000  # the earliest record of the title
    assert sorted(releases(rows, max_age_days=0)) == ["announced"]


def test_the_users_whose_taste_matches_the_genres_in_order():
    genres = ["comedy", "drama", "horror"]
    affinity = np.array([[0.0, 0.2, 0.8], [0.7, 0.3, 0.0], [0.1, 0.5, 0.4], [0.0, 0.0, 0.0]], dtype=np.float32)
    np.testing.assert_allclose(release_affinity(affinity, genres, "horror", "drama"), [0.9, 0.15, 0.65, 0.0])
    rows, match = matching_users(affinity, genres, "horror", "drama", threshold=0.3, limit=10)
    assert rows.tolist() == [0, 2]
    np.testing.assert_allclose(match, [0.9, 0.65], rtol=1e-6)
    assert matching_users(affinity, genres, "horror", None, threshold=0.3, limit=1)[0].tolist() == [0]
    assert matching_users(affinity, genres, "western", None, threshold=0.01, limit=10)[0].tolist() == []
