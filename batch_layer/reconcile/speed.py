"""The speed side of an hour: each additive view's values per key, read with the speed views' own readers.

The keys come from the batch side (every user, rail/button and title the fact rows have in the hour) and from
one SCAN per view over its bucket keys, so a key only the speed layer has is compared too.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from batch_layer.reconcile.drift import ViewTotals
from warehouse_models.metrics.ctr import COUNTS, read_ctr
from warehouse_models.metrics.engagement import METRICS, read_engagement
from warehouse_models.metrics.qoe import QOE_FIELDS, merge_sums, read_qoe
from warehouse_models.redis_io import text
from warehouse_models.redis_keys import KeyLayout

if TYPE_CHECKING:
    import redis

_HOUR = timedelta(hours=1)
_MARKER = "\x00"
SCAN_COUNT = 1000


def bucket_ids(client: redis.Redis, key_of: Callable[..., str], arity: int) -> dict[int, set[tuple[str, ...]]]:
    """Bucket start -> the ids (the builder's leading arguments) of every bucket key of one speed view.

    ``key_of`` is a bucketed :class:`~warehouse_models.redis_keys.KeyLayout` builder (ids..., bucket); its key
    shape is read from the builder itself, so the layout stays defined in one place.
    """
    head, sep, _ = key_of(*([_MARKER] * arity), 0).rpartition(":b:")
    if not sep:
        raise ValueError(f"{key_of.__name__} does not build bucket keys")
    pattern = head.replace(_MARKER, "*") + ":b:*"
    parse = re.compile("(.+?)".join(re.escape(part) for part in head.split(_MARKER)) + r":b:(\d+)$")
    found: dict[int, set[tuple[str, ...]]] = {}
    for key in client.scan_iter(match=pattern, count=SCAN_COUNT):
        match = parse.match(text(key))
        if match:
            *ids, bucket = match.groups()
            found.setdefault(int(bucket), set()).add(tuple(ids))
    return found


def ids_in_hour(found: dict[int, set[tuple[str, ...]]], hour: datetime) -> set[tuple[str, ...]]:
    """The ids with a bucket inside the hour."""
    start = int(hour.timestamp())
    return {ids for bucket, all_ids in found.items() if start <= bucket < start + 3600 for ids in all_ids}


def engagement(client: redis.Redis, keys: KeyLayout, users: Iterable[str], hour: datetime, *,
               now: float) -> ViewTotals:
    """Watch seconds, events and clicks per user in the hour, from :func:`read_engagement`."""
    start = hour.timestamp()
    values = {user: read_engagement(client, keys, user, since_epoch=start, until_epoch=start + 3600, now_epoch=now)
              for user in sorted(set(users))}
    return ViewTotals("engagement", METRICS, {u: v for u, v in values.items() if any(v.values())})


def ctr(client: redis.Redis, keys: KeyLayout, rail_buttons: Iterable[tuple[str, str]], hour: datetime, *,
        now: float) -> ViewTotals:
    """Impressions and clicks per rail/button in the hour, from :func:`read_ctr`."""
    start = hour.timestamp()
    values = {}
    for rail, button in sorted(set(rail_buttons)):
        read = read_ctr(client, keys, rail, button, since_epoch=start, until_epoch=start + 3600, now_epoch=now)
        if read["impressions"] or read["clicks"]:
            values[f"{rail}:{button}"] = {count: float(read[count]) for count in COUNTS}
    return ViewTotals("ctr", COUNTS, values)


def qoe(client: redis.Redis, keys: KeyLayout, contents: Iterable[str], hours: Iterable[datetime]) -> dict[
        datetime, ViewTotals]:
    """QoE sums per slice (``content:device:country``) for each hour, from :func:`read_qoe` (one read per title)."""
    wanted = sorted(set(hours))
    per_hour: dict[datetime, dict[str, list[dict[str, int]]]] = {h: {} for h in wanted}
    if wanted:
        since, until = int(wanted[0].timestamp()), int((wanted[-1] + _HOUR).timestamp())
        for content in sorted(set(contents)):
            for (device, country, bucket), sums in read_qoe(client, keys, content, since=since, until=until).items():
                hour = next((h for h in wanted if h.timestamp() <= bucket < h.timestamp() + 3600), None)
                if hour is not None:
                    per_hour[hour].setdefault(f"{content}:{device}:{country}", []).append(sums)
    return {hour: ViewTotals("qoe", QOE_FIELDS, {k: merge_sums(parts) for k, parts in slices.items()})
            for hour, slices in per_hour.items()}
