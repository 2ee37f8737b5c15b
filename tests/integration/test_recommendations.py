"""The models group in Dagster against real Delta and Redis, the gate, promote and rollback, and the API's
recommendation routes.

Gold is written by deltalake from the simulator's taste interactions (tests.models_support). Materializing
``recommendation_model`` trains, evaluates (the hybrid beats popularity on the planted taste), keeps and publishes
the version (Redis pointer, the two gold tables). A worse model (2 factors, 1 iteration, ALS alone) is kept but
not published; ``reelytics models promote`` publishes it anyway and ``rollback`` returns to the first. The API
answers recommendations with reasons and similar titles from whichever version is current.
"""

from __future__ import annotations

from datetime import date

import pytest
from dagster import AssetKey

END = date(2026, 11, 8)


def test_models_definitions():
    from dagster import DailyPartitionsDefinition, Definitions

    from orchestration.definitions import defs

    Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    node = graph.get(AssetKey("recommendation_model"))
    assert {p.to_user_string() for p in node.parent_keys} == {"fact_stream_events", "dim_content", "dim_users"}
    assert isinstance(node.partitions_def, DailyPartitionsDefinition)
    assert {p.to_user_string() for p in graph.get(AssetKey("recs_user_top_n")).parent_keys} == {
        "recommendation_model"}
    assert graph.get(AssetKey("recommendation_model")).group_name == "models"
    assert {s.name: s.cron_schedule for s in defs.schedules}["models_daily_schedule"] == "30 3 * * *"
    assert defs.get_assets_def("recommendation_model").op.tags.get("reelytics/spark") == "true"


@pytest.fixture
def gold(redis_service, isolated, tmp_path, monkeypatch):
    from simulator.world import build_world
    from tests.models_support import taste_gold, write_gold
    from warehouse_models.settings import settings_environment

    settings = isolated.model_copy(update={"models_dir": tmp_path / "models", "recs_history_days": 8})
    world = build_world(seed=9, users=1500, titles=300, channels=2)
    tables, _ = taste_gold(world, end_day=END, days=8, watches_per_user=12)
    write_gold(settings, tables)
    for name, value in settings_environment(settings).items():
        monkeypatch.setenv(name, value)
    yield settings, world
    client = settings.redis_client()
    for key in client.scan_iter(match=settings.keys.pattern()):
        client.delete(key)


@pytest.mark.timeout(300)
def test_train_gate_promote_rollback_and_serve(gold, tmp_path):
    from dagster import DagsterInstance, materialize
    from fastapi.testclient import TestClient
    from typer.testing import CliRunner

    from batch_layer.analyst import open_duckdb
    from batch_layer.models.job import run_daily
    from orchestration.defs.models.assets import recommendation_model
    from orchestration.resources import ReelyticsSettingsResource
    from reelytics.cli import app as cli
    from serving.api.app import create_app
    from serving.api.auth import create_key

    settings, world = gold
    client, keys = settings.redis_client(), settings.keys
    with DagsterInstance.ephemeral(tempdir=str(tmp_path / "dagster")) as instance:
        result = materialize([recommendation_model], partition_key=END.isoformat(),
                             resources={"settings": ReelyticsSettingsResource()}, instance=instance)
    assert result.success
    metadata = result.asset_materializations_for_node("recommendation_model")[0].metadata
    good = metadata["version"].value
    assert metadata["published"].value is True
    assert metadata["hybrid_precision_at_10"].value > metadata["popularity_precision_at_10"].value
    assert "| hybrid |" in metadata["metrics"].value
    assert client.get(keys.model_pointer()).decode() == good
    connection = open_duckdb(settings)
    try:
        users, rows, versions = connection.query(
            "SELECT count(DISTINCT user_id), count(*), min(model_version) FROM recs_user_top_n").to_pylist()[0].values()
    finally:
        connection.close()
    assert versions == good and rows == users * settings.recs_top_n and users > 1000

    worse = settings.model_copy(update={"recs_factors": 2, "recs_iterations": 1, "recs_als_weight": 1.0,
                                        "recs_content_weight": 0.0, "recs_popularity_weight": 0.0})
    refused = run_daily(worse, day=END, progress=lambda _: None)
    assert not refused.published and "current model stays" in refused.reason
    assert client.get(keys.model_pointer()).decode() == good

    reader = create_key(client, keys, name="recs-app", scopes=["read"])
    user = world.users[0].user_id
    with TestClient(create_app(settings)) as http:
        answer = http.get(f"/v1/users/{user}/recommendations", params={"limit": 5}, headers={"X-API-Key": reader})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["model_version"] == good and body["known_user"] and len(body["items"]) == 5
        assert all(item["reason"]["kind"] in {"because_you_watched", "trending_in_your_country", "popular"}
                   for item in body["items"])
        assert body["freshness"]["as_of"].startswith("2026-11-09")
        stranger = http.get("/v1/users/somebody-new/recommendations", params={"country": "DE", "device_type": "tv"},
                            headers={"X-API-Key": reader}).json()
        assert not stranger["known_user"] and stranger["segment"] == "DE|tv" and len(stranger["items"]) == 10
        title = world.titles[0].content_id
        similar = http.get(f"/v1/content/{title}/similar", params={"limit": 3}, headers={"X-API-Key": reader})
        assert similar.status_code == 200 and len(similar.json()["items"]) == 3
        assert http.get("/v1/content/nope/similar", headers={"X-API-Key": reader}).status_code == 404

        runner = CliRunner()
        promoted = runner.invoke(cli, ["models", "promote", refused.version.version], env={"COLUMNS": "200"})
        assert promoted.exit_code == 0, promoted.output
        assert client.get(keys.model_pointer()).decode() == refused.version.version
        moved = http.get(f"/v1/users/{user}/recommendations", headers={"X-API-Key": reader}).json()
        assert moved["model_version"] == refused.version.version
        back = runner.invoke(cli, ["models", "rollback"], env={"COLUMNS": "200"})
        assert back.exit_code == 0 and good in back.output, back.output
        assert client.get(keys.model_pointer()).decode() == good
        listed = runner.invoke(cli, ["models", "list"], env={"COLUMNS": "200"})
        assert good in listed.output and refused.version.version in listed.output and "refused" in listed.output
