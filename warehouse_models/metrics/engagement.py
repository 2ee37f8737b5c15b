"""Engagement per user in 5-second event-time windows: watch seconds, events and clicks (the definition).

Watch seconds follow the simulator's ground truth: one heartbeat interval (10 s) per ``heartbeat`` whose
``player_state`` is ``playing``. ``events`` counts every playback and interaction event of the user in the
window, ``clicks`` the ``click`` events among them. The speed layer writes the windows into the user's minute
buckets (:mod:`speed_layer.engagement`) and adds them up per hour; :func:`engagement_windows` reads them back, the
batch layer publishes the same windows' totals (``batch_layer.publish.user_totals``).

The hourly hash also says which of its minutes hold windows (:func:`minute_field`: events per minute bucket), so a
reader of the last minutes reads the hours first and then only the minute buckets that exist: two round trips and
a handful of keys, not a key per minute up to the clock skew the envelope allows (an hour ahead).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from warehouse_models.events import (
    HEARTBEAT_INTERVAL_SECONDS,
    INTERACTION_TYPES,
    MAX_CLOCK_SKEW,
    PLAYBACK_TYPES,
    EventType,
)
from warehouse_models.metrics.contributions import Contributions, reduce_frame, window_start
from warehouse_models.redis_io import live_hour_starts, text
from warehouse_models.redis_keys import (
    HOUR_SECONDS,
    SPEED_BUCKET_SECONDS,
    SPEED_BUCKET_TTL_SECONDS,
    KeyLayout,
    bucket_start,
)
from warehouse_models.redis_plan import Command, Plan, run
from warehouse_models.settings import Settings

if TYPE_CHECKING:
    import redis
    from pyspark.sql import DataFrame
    from pyspark.sql.column import Column as SparkColumn


WINDOW_SECONDS = 5
"""Width of the tumbling engagement windows (several fit in one speed bucket)."""

METRICS: tuple[str, ...] = ("watch_seconds", "events", "clicks")
"""The window values, in output order; also the hash field suffixes."""

DAILY_DAYS = 30
"""Days of per-day totals the batch view keeps per user: W's date and the 29 before it (UTC dates)."""


def utc_day(epoch: float) -> str:
    """The UTC date (``YYYY-MM-DD``) a window starting at ``epoch`` counts on."""
    return datetime.fromtimestamp(epoch, tz=timezone.utc).date().isoformat()


def daily_field(day: str, metric: str) -> str:
    """The batch user-totals hash field of one day's metric: ``YYYY-MM-DD:metric``."""
    return f"{day}:{metric}"


def split_daily(fields: Mapping[str, str]) -> dict[str, dict[str, int]]:
    """The per-day totals of a batch user-totals hash: date -> metrics (the all-time fields are left out)."""
    days: dict[str, dict[str, int]] = {}
    for field, value in fields.items():
        day, sep, metric = field.rpartition(":")
        if sep and day and metric in METRICS:
            days.setdefault(day, dict.fromkeys(METRICS, 0))[metric] = int(value)
    return days


MINUTE_PREFIX = "minute:"
"""Prefix of the hourly hash's minute index fields (:func:`minute_field`); never a metric name."""


def minute_field(bucket: int) -> str:
    """The hourly hash field that counts the events of one minute bucket (its start, epoch s): present once the
    minute holds a window."""
    return f"{MINUTE_PREFIX}{bucket}"


def _where() -> SparkColumn:
    from pyspark.sql import functions as F

    types = sorted(t.value for t in PLAYBACK_TYPES | INTERACTION_TYPES)
    return F.col("event_type").isin(types) & F.col("user_id").isNotNull()


def _columns() -> dict[str, SparkColumn]:
    from pyspark.sql import functions as F

    playing = (F.col("event_type") == EventType.HEARTBEAT.value) & (F.col("player_state") == "playing")
    return {
        "user_id": F.col("user_id"),
        "start": window_start(WINDOW_SECONDS),
        "watch_seconds": F.when(playing, F.lit(HEARTBEAT_INTERVAL_SECONDS)).otherwise(F.lit(0)).cast("long"),
        "events": F.lit(1).cast("long"),
        "clicks": F.when(F.col("event_type") == EventType.CLICK.value, F.lit(1)).otherwise(F.lit(0)).cast("long"),
    }


CONTRIBUTIONS = Contributions(where=_where, columns=_columns, keys=("user_id", "start"), sums=METRICS)
"""Per event: its user's 5-second window (``start``, epoch seconds) and what it adds to the window's metrics."""


def engagement_rows(events: DataFrame, settings: Settings) -> DataFrame:
    """Valid events (a batch frame) -> one row per (user, 5-second window): watch_seconds, events, clicks.

    Columns: ``user_id``, ``window_start``, ``window_end`` (UTC timestamps), ``watch_seconds``, ``events``,
    ``clicks`` (longs): :data:`CONTRIBUTIONS` reduced by Spark.
    """
    from pyspark.sql import functions as F

    return reduce_frame(events, CONTRIBUTIONS).select(
        "user_id",
        F.timestamp_seconds("start").alias("window_start"),
        F.timestamp_seconds(F.col("start") + WINDOW_SECONDS).alias("window_end"),
        *METRICS,
    )


def _minute_range(since_epoch: float | None, now: float, until_epoch: float | None) -> tuple[int, int]:
    """The first and last minute bucket a read of the windows from ``since_epoch`` covers: at most
    :data:`SPEED_BUCKET_TTL_SECONDS` back (older buckets have expired), up to the clock skew the envelope allows
    ahead, or to ``until_epoch``."""
    oldest = now - SPEED_BUCKET_TTL_SECONDS
    first = bucket_start(oldest if since_epoch is None else max(since_epoch, oldest))
    last = bucket_start(now + MAX_CLOCK_SKEW.total_seconds())
    if until_epoch is not None:
        last = min(last, bucket_start(until_epoch - 1))
    return first, last


def minutes_of_hour(hour: int, fields: Mapping[Any, Any]) -> list[int]:
    """The minute buckets of an hour that may hold windows, from its hourly hash: the indexed ones, every minute of
    the hour when the hash has totals but no index, none when the hash is empty."""
    names = [text(field) for field in fields]
    indexed = sorted(int(name[len(MINUTE_PREFIX):]) for name in names if name.startswith(MINUTE_PREFIX))
    if indexed or not names:
        return indexed
    return list(range(hour, hour + HOUR_SECONDS, SPEED_BUCKET_SECONDS))


def live_hours(keys: KeyLayout, user_id: str, *, now_epoch: float | None = None) -> Plan[dict[int, dict[str, str]]]:
    """Every hourly hash of a user the speed layer may still hold (from :data:`SPEED_BUCKET_TTL_SECONDS` back to the
    clock skew ahead), in one round: hour start -> its fields (totals and the minute index); empty hours are left
    out. What :func:`hours_from` and :func:`windows_from` read the rest of a user's engagement from."""
    hours = live_hour_starts(time.time() if now_epoch is None else now_epoch)
    replies = yield [Command("HGETALL", keys.user_engagement_hour(user_id, hour)) for hour in hours]
    return {hour: {text(k): text(v) for k, v in fields.items()} for hour, fields in zip(hours, replies, strict=True)
            if fields}


def windows_from(keys: KeyLayout, user_id: str, hours: Mapping[int, Mapping[Any, Any]], *,
                 since_epoch: float | None = None, now_epoch: float | None = None,
                 until_epoch: float | None = None) -> Plan[dict[int, dict[str, int]]]:
    """The windows from ``since_epoch`` (to ``until_epoch``), given the hourly hashes that cover them (hour start ->
    fields, as :func:`live_hours` returns): one round, for the minute buckets their index names."""
    now = time.time() if now_epoch is None else now_epoch
    first, last = _minute_range(since_epoch, now, until_epoch)
    buckets = [bucket for hour, fields in sorted(hours.items())
               for bucket in minutes_of_hour(hour, fields) if first <= bucket <= last]
    replies = yield [Command("HGETALL", keys.user_engagement_bucket(user_id, bucket)) for bucket in buckets]
    windows: dict[int, dict[str, int]] = {}
    for fields in replies:
        for field, value in fields.items():
            start_text, _, metric = text(field).partition(":")
            start = int(start_text)
            # The bucket W falls in may hold windows that start before W: those belong to the batch view.
            if metric in METRICS and (since_epoch is None or start >= since_epoch) \
                    and (until_epoch is None or start < until_epoch):
                windows.setdefault(start, dict.fromkeys(METRICS, 0))[metric] += int(value)
    return dict(sorted(windows.items()))


def engagement_windows(keys: KeyLayout, user_id: str, *, since_epoch: float | None = None,
                       now_epoch: float | None = None, until_epoch: float | None = None
                       ) -> Plan[dict[int, dict[str, int]]]:
    """A user's 5-second windows that start at or after ``since_epoch`` (and before ``until_epoch``): window
    start (epoch s) -> ``{"watch_seconds", "events", "clicks"}``, oldest first; windows without events are left out.

    Covers the minutes from ``since_epoch`` (at most :data:`SPEED_BUCKET_TTL_SECONDS` back, older buckets have
    expired) to ``now_epoch`` plus the clock skew the envelope allows. Two round trips: the hourly hashes of those
    minutes, whose minute index (:func:`minute_field`) names the minute buckets that hold windows, then those
    buckets. An hourly hash without an index (written before there was one) stands for every minute of its hour.

    Args:
        since_epoch: the batch layer's watermark W (epoch seconds); None for every live bucket.
        now_epoch: the reader's clock (epoch seconds); defaults to the wall clock. A replayed day passes its own.
        until_epoch: only windows that start before this (e.g. the end of an hour being reconciled); None for
            every window up to the clock.
    """
    now = time.time() if now_epoch is None else now_epoch
    first, last = _minute_range(since_epoch, now, until_epoch)
    hours = range(bucket_start(first, HOUR_SECONDS), last + 1, HOUR_SECONDS)
    indexes = yield [Command("HGETALL", keys.user_engagement_hour(user_id, hour)) for hour in hours]
    return (yield from windows_from(keys, user_id, dict(zip(hours, indexes, strict=True)), since_epoch=since_epoch,
                                    now_epoch=now, until_epoch=until_epoch))


def recent_engagement(keys: KeyLayout, user_id: str, *, since_epoch: float, now_epoch: float | None = None
                      ) -> Plan[tuple[dict[int, dict[str, str]], dict[int, dict[str, int]]]]:
    """Every live hourly hash (:func:`live_hours`) and the windows from ``since_epoch`` (the last minutes), in two
    rounds: what a reader needs besides the batch part; :func:`hours_from` then adds the hours from W without
    reading again when W is an hour boundary."""
    now = time.time() if now_epoch is None else now_epoch
    hours = yield from live_hours(keys, user_id, now_epoch=now)
    windows = yield from windows_from(keys, user_id, hours, since_epoch=since_epoch, now_epoch=now)
    return hours, windows


def _hour_metrics(fields: Mapping[Any, Any]) -> dict[str, int]:
    found = dict.fromkeys(METRICS, 0)
    for field, value in fields.items():
        if (metric := text(field)) in METRICS:
            found[metric] += int(value)
    return found


def hours_from(keys: KeyLayout, user_id: str, hours: Mapping[int, Mapping[Any, Any]], *, since_epoch: int,
               now_epoch: float | None = None) -> Plan[dict[int, dict[str, int]]]:
    """A user's totals per hour over the windows that start at or after ``since_epoch``, given the hourly hashes
    (hour start -> fields) from its hour on: whole hours from their totals; when ``since_epoch`` is inside an hour,
    that hour's windows from it on from the minute buckets (one round, none otherwise)."""
    now = time.time() if now_epoch is None else now_epoch
    boundary = -(-since_epoch // HOUR_SECONDS) * HOUR_SECONDS
    oldest = bucket_start(now - SPEED_BUCKET_TTL_SECONDS, HOUR_SECONDS)
    found = {hour: _hour_metrics(fields) for hour, fields in hours.items()
             if hour >= max(boundary, oldest) and any(text(field) in METRICS for field in fields)}
    if boundary != since_epoch:
        partial_hour = boundary - HOUR_SECONDS
        partial = yield from windows_from(keys, user_id, {partial_hour: hours.get(partial_hour, {})},
                                          since_epoch=since_epoch, now_epoch=now, until_epoch=boundary)
        for start, window in partial.items():
            hour = found.setdefault(bucket_start(start, HOUR_SECONDS), dict.fromkeys(METRICS, 0))
            for metric in METRICS:
                hour[metric] += window[metric]
    return dict(sorted(found.items()))


def engagement_hours(keys: KeyLayout, user_id: str, *, since_epoch: int, now_epoch: float | None = None
                     ) -> Plan[dict[int, dict[str, int]]]:
    """A user's totals per hour over the windows that start at or after ``since_epoch``: hour start (epoch s) ->
    metrics, oldest first; hours without events are left out. Whole hours come from the hourly aggregates (a key
    each); when ``since_epoch`` is inside an hour, that hour's windows from it on come from the minute buckets the
    hour's index names (a second round). At most :data:`SPEED_BUCKET_TTL_SECONDS` back."""
    now = time.time() if now_epoch is None else now_epoch
    hours = yield from live_hours(keys, user_id, now_epoch=now)
    return (yield from hours_from(keys, user_id, hours, since_epoch=since_epoch, now_epoch=now))


def engagement_totals(keys: KeyLayout, user_id: str, *, since_epoch: int, now_epoch: float | None = None
                      ) -> Plan[dict[str, int]]:
    """A user's totals over the windows that start at or after ``since_epoch`` (:func:`engagement_hours` added
    up)."""
    hours = yield from engagement_hours(keys, user_id, since_epoch=since_epoch, now_epoch=now_epoch)
    return added_up(hours)


def added_up(parts: Mapping[int, Mapping[str, int]]) -> dict[str, int]:
    """The metrics of several windows or hours (start -> metrics) added up."""
    return {metric: sum(part[metric] for part in parts.values()) for metric in METRICS}


def read_engagement_windows(client: redis.Redis, keys: KeyLayout, user_id: str, *, since_epoch: float | None = None,
                            now_epoch: float | None = None, until_epoch: float | None = None
                            ) -> dict[int, dict[str, int]]:
    """:func:`engagement_windows` with a blocking client."""
    return run(client, engagement_windows(keys, user_id, since_epoch=since_epoch, now_epoch=now_epoch,
                                          until_epoch=until_epoch))


def read_engagement(client: redis.Redis, keys: KeyLayout, user_id: str, *, since_epoch: float | None = None,
                    now_epoch: float | None = None, until_epoch: float | None = None) -> dict[str, int]:
    """A user's totals over the speed windows that start at or after ``since_epoch`` (and before ``until_epoch``)
    (:func:`read_engagement_windows` added up).

    Returns:
        ``{"watch_seconds", "events", "clicks"}`` as ints (zeros when nothing was recorded).
    """
    totals = dict.fromkeys(METRICS, 0)
    for window in read_engagement_windows(client, keys, user_id, since_epoch=since_epoch, now_epoch=now_epoch,
                                          until_epoch=until_epoch).values():
        for metric, value in window.items():
            totals[metric] += value
    return totals


