"""The pure parts of the real-time vs micro-batch benchmark: its figures, a probe's visibility, the CPU reading."""

from __future__ import annotations

import os
import time

from bench.speed import Probe
from bench.speed_realtime import figures_of, tree_cpu_seconds


def _step(rate: int, p50: float | None, p95: float | None, p99: float | None, cpu: float) -> dict:
    return {"rate": rate, "resume_p50_s": p50, "resume_p95_s": p95, "resume_p99_s": p99, "cpu_cores": cpu,
            "sustained": True}


def test_figures_per_mode_and_rate_with_the_p95_ratio():
    modes = {
        "microbatch": {"steps": [_step(2_000, 1.5, 2.0, 2.5, 0.8), _step(10_000, 3.0, 4.0, 5.0, 1.4)]},
        "realtime": {"steps": [_step(2_000, 0.2, 0.5, 0.9, 1.1)]},
    }
    assert figures_of(modes) == {
        "microbatch_resume_p50_s_at_2k": 1.5, "microbatch_resume_p95_s_at_2k": 2.0,
        "microbatch_resume_p99_s_at_2k": 2.5, "microbatch_cpu_cores": 0.8,
        "microbatch_resume_p50_s_at_10k": 3.0, "microbatch_resume_p95_s_at_10k": 4.0,
        "microbatch_resume_p99_s_at_10k": 5.0, "microbatch_cpu_cores_at_10k": 1.4,
        "realtime_resume_p50_s_at_2k": 0.2, "realtime_resume_p95_s_at_2k": 0.5,
        "realtime_resume_p99_s_at_2k": 0.9, "realtime_cpu_cores": 1.1,
        "realtime_over_microbatch_p95_ratio": 0.25,
    }


def test_a_percentile_that_fell_on_an_unseen_probe_gives_no_figure_and_no_ratio():
    modes = {"microbatch": {"steps": [_step(2_000, 1.0, None, None, 0.5)]},
             "realtime": {"steps": [_step(2_000, 0.1, 0.3, 0.4, 0.9)]}}
    figures = figures_of(modes)
    assert "microbatch_resume_p95_s_at_2k" not in figures
    assert "realtime_over_microbatch_p95_ratio" not in figures
    assert figures["realtime_resume_p95_s_at_2k"] == 0.3


def test_a_probe_is_seen_when_every_watched_view_showed_it():
    probe = Probe("u", "c", "k", sent=0.0, resume_seen=1.0)
    assert probe.seen_in(("resume",))
    assert not probe.seen_in(("resume", "engagement"))


def test_tree_cpu_seconds_counts_this_process_working():
    before = tree_cpu_seconds(os.getpid())
    end = time.process_time() + 0.2
    spun = 0
    while time.process_time() < end:  # burn CPU in this process
        spun += sum(range(1_000))
    assert tree_cpu_seconds(os.getpid()) - before >= 0.15
