"""Trending titles, live and VOD apart, over every country and per country: distinct active viewers over a
sliding event-time window (the definition).

Spark cannot count distinct values exactly in a streaming aggregation, so :func:`trending_rows` gives, per title,
country and 1-minute window, the set of users active on it (any playback event; the event's ``country``, null when
it names none); the speed layer keeps each viewer's newest minute per title in Redis, once for the kind (every
country) and once for the kind and country, and ranks by the viewers whose newest minute is in the window, in each
scope (:mod:`speed_layer.trending`); the batch layer's baselines use the same rows. A user seen in two countries
counts once in the kind's ranking and once in each country's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from warehouse_models.events import PLAYBACK_TYPES
from warehouse_models.metrics.contributions import Contributions, reduce_frame, window_start
from warehouse_models.redis_io import text
from warehouse_models.redis_keys import SPEED_BUCKET_SECONDS, ContentKind, KeyLayout
from warehouse_models.redis_plan import Command, Plan, run, score_pairs
from warehouse_models.settings import Settings

if TYPE_CHECKING:
    import redis
    from pyspark.sql import DataFrame
    from pyspark.sql.column import Column as SparkColumn


KINDS: tuple[ContentKind, ...] = ("vod", "live")


def _where() -> SparkColumn:
    from pyspark.sql import functions as F

    types = sorted(t.value for t in PLAYBACK_TYPES)
    return F.col("event_type").isin(types) & F.col("user_id").isNotNull() & F.col("content_id").isNotNull()


def _columns() -> dict[str, SparkColumn]:
    from pyspark.sql import functions as F

    return {
        "content_kind": F.when(F.coalesce(F.col("is_live"), F.lit(False)), F.lit("live")).otherwise(F.lit("vod")),
        "country": F.col("country"),
        "content_id": F.col("content_id"),
        # One window per speed bucket, so each window is exactly one minute set in Redis.
        "start": window_start(SPEED_BUCKET_SECONDS),
        "viewers": F.col("user_id"),
    }


CONTRIBUTIONS = Contributions(where=_where, columns=_columns,
                              keys=("content_kind", "country", "content_id", "start"), distinct=("viewers",))
"""Per playback event: its title's kind, its country and minute, and its user among the title's viewers of that
minute there."""


def trending_rows(events: DataFrame, settings: Settings) -> DataFrame:
    """Valid events (a batch frame) -> the users active on each title in each minute, per country.

    Columns: ``content_kind`` (``live`` when ``is_live`` is true, else ``vod``), ``country`` (null for events
    without one), ``content_id``, ``window_start`` (UTC timestamp of the minute), ``viewers`` (sorted array of
    distinct user ids): :data:`CONTRIBUTIONS` reduced by Spark.
    """
    from pyspark.sql import functions as F

    return reduce_frame(events, CONTRIBUTIONS).select(
        "content_kind", "country", "content_id", F.timestamp_seconds("start").alias("window_start"), "viewers")


def trending_ranking(keys: KeyLayout, kind: ContentKind, n: int = 10, country: str | None = None
                     ) -> Plan[list[tuple[str, int]]]:
    """The ``n`` titles of a kind with the most distinct viewers in the newest window, highest first: over every
    country, or in ``country``'s scope (the viewers whose events name it)."""
    (flat,) = yield [Command("ZRANGE", keys.trending(kind, country), 0, n - 1, "REV", "WITHSCORES")]
    return [(text(member), int(score)) for member, score in score_pairs(flat)]


def read_trending(client: redis.Redis, keys: KeyLayout, kind: ContentKind, n: int = 10,
                  country: str | None = None) -> list[tuple[str, int]]:
    """:func:`trending_ranking` with a blocking client."""
    return run(client, trending_ranking(keys, kind, n, country))


