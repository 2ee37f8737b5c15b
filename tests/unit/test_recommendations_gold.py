"""The trainer's read of gold (DuckDB over Delta tables deltalake wrote, no JVM) against the interactions the
tables were made from, and what it refuses."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from batch_layer.models.job import TrainingDataError, read_training_data
from simulator.world import build_world
from tests.models_support import taste_gold, write_gold
from warehouse_models.recommendations import segment_of
from warehouse_models.settings import Settings

END = date(2026, 11, 8)


def test_training_data_equals_the_interactions_written(tmp_path):
    world = build_world(seed=5, users=150, titles=60, channels=2)
    tables, columns = taste_gold(world, end_day=END, days=4, watches_per_user=6)
    settings = Settings(data_dir=tmp_path, delta_root=str(tmp_path / "delta"))
    write_gold(settings, tables)
    data = read_training_data(settings, until=END, days=3)
    expected = pd.DataFrame(columns)
    expected = expected[pd.to_datetime(expected["event_date"]).dt.date >= date(2026, 11, 6)]
    got = data.interactions.sort_values(["user_id", "content_id", "event_date"]).reset_index(drop=True)
    want = expected.sort_values(["user_id", "content_id", "event_date"]).reset_index(drop=True)
    assert got[["user_id", "content_id"]].values.tolist() == want[["user_id", "content_id"]].values.tolist()
    assert got["watch_seconds"].tolist() == pytest.approx(want["watch_seconds"].tolist())
    assert got["completion_pct"].tolist() == pytest.approx(want["completion_pct"].tolist())
    assert [row["content_id"] for row in data.catalog] == sorted(c.content_id for c in world.titles)  # VOD only
    user = world.users[0]
    assert data.users[user.user_id].segment == segment_of(user.country, user.device.device_type)
    assert data.users[user.user_id].preferences == " ".join(user.stated_preferences)
    assert (data.data_from, data.data_to) == ("2026-11-06", "2026-11-08")
    with pytest.raises(TrainingDataError, match="no VOD watching between 2026-12-01 and 2026-12-02"):
        read_training_data(settings, until=date(2026, 12, 2), days=2)


def test_missing_gold_says_what_to_build(tmp_path):
    from batch_layer.analyst import NoGoldTablesError

    settings = Settings(data_dir=tmp_path, delta_root=str(tmp_path / "delta"))
    with pytest.raises(NoGoldTablesError, match="materialize the gold assets"):
        read_training_data(settings, until=END, days=3)
