"""Concurrent streams over a plan's limit (the definition both layers count by): the simulator's ground truth rule.

A session streams from its first to its last heartbeat, both inclusive, with no timeout slack; sessions are taken in
order of (first heartbeat, last heartbeat, id); one that starts while at least ``limit`` sessions stream (over-limit
ones included) is over the limit. The speed layer applies it per account as heartbeats arrive
(:mod:`speed_layer.concurrency`), the batch layer per account and day (``batch_layer.marts.concurrency_violations``).
"""

from __future__ import annotations

from collections.abc import Iterable


def over_limit_sessions(intervals: Iterable[tuple[int, int, str]], limit: int | None) -> dict[str, int]:
    """Sessions that started while ``limit`` others streamed -> their start (ms): the ground truth's rule.

    Args:
        intervals: (first heartbeat ms, last heartbeat ms, session id) of one account's sessions.
        limit: the plan's limit; None (unknown) puts nobody over it.
    """
    if limit is None:
        return {}
    streaming: list[tuple[int, int, str]] = []
    over: dict[str, int] = {}
    for first, last, session_id in sorted(intervals):
        streaming = [s for s in streaming if s[1] >= first]
        if len(streaming) >= limit:
            over[session_id] = first
        streaming.append((first, last, session_id))
    return over

