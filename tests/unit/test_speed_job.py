"""The speed job's own decisions that need no Spark: its Spark master, the order of the shared query's views,
and the output mode and trigger each query starts with."""

from __future__ import annotations

import os

import pytest

from speed_layer.job import SHARED_QUERY, VIEW_MODULES, plan_queries, speed_master, views
from warehouse_models.settings import Settings


@pytest.mark.parametrize(("master", "slots", "expected"), [
    ("local[2]", 6, "local[6]"),
    ("local", 6, "local[6]"),
    ("local[2,3]", 6, "local[6,3]"),
    ("local[8]", 6, "local[8]"),
    ("local[6]", 6, "local[6]"),
    ("local[2]", 1, "local[2]"),
    ("spark://master:7077", 6, "spark://master:7077"),
    ("yarn", 6, "yarn"),
])
def test_speed_master_raises_only_a_local_master_below_the_slots(master: str, slots: int, expected: str) -> None:
    settings = Settings(spark_master=master, speed_local_task_slots=slots)
    assert speed_master(settings) == expected


def test_speed_master_counts_local_star_as_the_cores() -> None:
    cores = os.cpu_count() or 1
    assert speed_master(Settings(spark_master="local[*]", speed_local_task_slots=cores)) == "local[*]"
    assert speed_master(Settings(spark_master="local[*]", speed_local_task_slots=cores + 1)) == f"local[{cores + 1}]"


def test_the_shared_query_writes_the_latest_value_views_first() -> None:
    shared, *stateful = plan_queries(views())
    names = [view.name for view in shared.views]
    assert names[:3] == ["resume", "recent", "concurrency"]
    assert all(not view.late_cut for view in shared.views[:3])
    assert {view.name for view in shared.views} | {p.name for p in stateful} == set(VIEW_MODULES)
    assert all(plan.views[0].stateful and len(plan.views) == 1 for plan in stateful)


def test_each_query_runs_with_the_output_mode_and_trigger_its_plan_gives() -> None:
    """What ``start_query`` hands to Spark: the shared query appends each micro-batch's records once, view_end
    appends each ended session once; both on the 1 s trigger (no query's state step runs Python)."""
    settings = Settings()
    assert settings.speed_trigger_seconds == 1
    plans = {plan.name: plan for plan in plan_queries(views())}
    assert {name: plan.output_mode for name, plan in plans.items()} == {SHARED_QUERY: "append", "view_end": "append"}
    assert {name: plan.trigger_seconds(settings) for name, plan in plans.items()} == {SHARED_QUERY: 1, "view_end": 1}
    shared = {view.name for view in plans[SHARED_QUERY].views}
    assert {"dead_letters", "qoe"} <= shared


def test_the_session_state_views_run_in_a_background_process_unless_niceness_is_zero() -> None:
    from speed_layer.__main__ import background_views

    every = list(VIEW_MODULES)
    foreground, behind = background_views(every, Settings())
    assert behind == ["view_end"]
    assert foreground == [name for name in every if name != "view_end"]
    # Only session-state views go behind: naming a shared one there changes nothing.
    assert background_views(every, Settings(speed_background_views="resume,qoe")) == (every, [])
    assert background_views(every, Settings(speed_background_views="")) == (every, [])
    assert background_views(every, Settings(speed_background_niceness=0)) == (every, [])
    assert background_views(["resume", "trending"], Settings()) == (["resume", "trending"], [])
    assert background_views(["view_end"], Settings()) == (["view_end"], [])


def test_the_background_child_lowers_its_priority_and_stops_without_its_parent(monkeypatch) -> None:
    import sys

    from speed_layer import __main__ as entry

    niced: list[int] = []
    monkeypatch.setattr(os, "nice", niced.append)
    monkeypatch.setattr(sys, "platform", "darwin")  # no parent-death signal asked for in the test process
    monkeypatch.setattr(os, "getppid", lambda: 4242)
    entry.become_background(Settings(speed_background_niceness=12), 4242)
    assert niced == [12]
    with pytest.raises(SystemExit):
        entry.become_background(Settings(), 1)
