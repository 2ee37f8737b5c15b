"""A seeded, deterministic stand-in for players, apps and the catalog.

The same :class:`SimulationConfig` always gives the byte-identical event stream, so a test can generate it,
send it through the pipeline, and compare every view with :func:`ground_truth` of the same stream::

    config = SimulationConfig(start=datetime(2026, 1, 5, 20, tzinfo=timezone.utc), users=500)
    events = list(simulate(config))
    truth = ground_truth(events, config=config)
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from simulator.sessions import SimulationConfig, SpikePlan, build_world_for, generate_events, spike_plan
from simulator.truth import TruthAccumulator, compute_truth, write_truth
from simulator.world import World

logger = logging.getLogger(__name__)

__all__ = [
    "SimulationConfig",
    "SpikePlan",
    "TruthAccumulator",
    "World",
    "build_world_for",
    "ground_truth",
    "simulate",
    "spike_plan",
    "write_truth",
]


def simulate(config: SimulationConfig) -> Iterator[dict[str, Any]]:
    """The event stream of a config, in event-time order, catalog upserts first (wire-form dicts)."""
    return generate_events(config)


def ground_truth(events: Iterable[Mapping[str, Any]], *, config: SimulationConfig | None = None) -> dict[str, Any]:
    """Ground truth of a stream; with its config, it also reports the spike and judges abandonment at the end."""
    if config is None:
        return compute_truth(events)
    return compute_truth(events, spike=spike_plan(config), end=config.end)
