"""The gold marts: one TableSpec each, built from ``fact_stream_events`` and the dims by ``batch_layer.marts``.

Shared definitions (the marts agree on them so their numbers add up against each other):

* **Watch seconds**: the sum of the fact's ``watch_seconds`` over heartbeats (10 per playing heartbeat), in
  the date (or hour) of the heartbeat. ``view_end`` rows carry a whole session's total and are not added.
* **Session**: one ``session_id`` of the playback events, attributed to the date of its first event; its
  device type, country, user and title are those of its first event that names them.
* **View**: a session with a ``first_frame``, attributed to the date of its first frame.
* Slices without a device type or country are reported as ``unknown``.

Daily marts are partitioned by ``event_date``; the QoE mart by ``event_hour``. A build overwrites whole
partitions, so re-running a date gives the same rows.
"""

from __future__ import annotations

from warehouse_models.tables import TableSpec
from warehouse_models.types import Column

DROPOFF_STEP_PCT = 5
"""The drop-off curve has one point per 5 % of the duration, 0 % to 100 % (21 points)."""

DROPOFF_POINTS: tuple[int, ...] = tuple(range(0, 101, DROPOFF_STEP_PCT))

COMPLETION_THRESHOLD = 0.9
"""A view is complete when its last position is at least 90 % of the title's duration."""

SESSION_LENGTH_BUCKETS: tuple[tuple[str, int, int | None], ...] = (
    ("0-1", 0, 1), ("1-5", 1, 5), ("5-15", 5, 15), ("15-30", 15, 30), ("30-60", 30, 60), ("60-120", 60, 120),
    ("120+", 120, None),
)
"""(label, lower bound in minutes inclusive, upper bound exclusive or None) of the session length buckets."""

UNKNOWN = "unknown"
"""Slice value for a missing device type or country (the same word the speed layer's QoE uses)."""


def dropoff_column(pct: int) -> str:
    """Name of the drop-off point at ``pct`` % of the duration."""
    return f"reached_pct_{pct:03d}"


_EVENT_DATE = Column("event_date", "date", "Event-time date (UTC); the partition.", nullable=False)

MART_USER_ENGAGEMENT_DAILY = TableSpec(
    "mart_user_engagement_daily", "gold",
    (
        Column("user_id", "string", "Profile.", nullable=False),
        Column("account_id", "string", "Paying account (of the user's first event that day)."),
        Column("watch_seconds", "double", "Seconds played that day (10 per playing heartbeat).", nullable=False),
        Column("sessions", "long", "Sessions the user started that day.", nullable=False),
        Column("events", "long", "Events the user sent that day (computed view_end rows not counted).",
               nullable=False),
        Column("clicks", "long", "Clicks on rails that day.", nullable=False),
        Column("distinct_titles", "long", "Distinct titles with playback events that day.", nullable=False),
        _EVENT_DATE,
    ),
    ("event_date",),
    "Per user and day: watch time, sessions, events, clicks and distinct titles.",
)

MART_CONTENT_PERFORMANCE = TableSpec(
    "mart_content_performance", "gold",
    (
        Column("content_id", "string", "Title or channel.", nullable=False),
        Column("duration_minutes", "int", "Running time from dim_content (null for live or unknown)."),
        Column("views", "long", "Sessions whose first frame was that day.", nullable=False),
        Column("watch_seconds", "double", "Seconds played that day (10 per playing heartbeat).", nullable=False),
        Column("completed_views", "long",
               "Views whose last position is at least 90 % of the duration (null without a duration)."),
        Column("completion_rate", "double", "completed_views / views (null without a duration or views)."),
        *(Column(dropoff_column(p), "double",
                 f"Share of the day's views whose furthest position reached {p} % of the duration "
                 "(null without a duration or views).")
          for p in DROPOFF_POINTS),
        _EVENT_DATE,
    ),
    ("event_date",),
    "Per title and day: views, watch time, completion and the drop-off curve (21 points, every 5 %).",
)

QOE_SUM_COLUMNS: tuple[Column, ...] = (
    Column("plays", "long", "Play requests.", nullable=False),
    Column("startups", "long", "First frames.", nullable=False),
    Column("startup_ms_sum", "long", "Sum of startup times (ms).", nullable=False),
    Column("playing_seconds", "long", "10 per playing heartbeat.", nullable=False),
    Column("stall_ms", "long", "Sum of stall lengths (ms) of completed stalls.", nullable=False),
    Column("rebuffers", "long", "Completed stalls (buffer_end events).", nullable=False),
    Column("bitrate_seconds_kbps", "long", "Sum of bitrate x 10 over playing heartbeats with a bitrate.",
           nullable=False),
    Column("bitrate_seconds", "long", "10 per playing heartbeat with a bitrate.", nullable=False),
    Column("quality_changes", "long", "Quality changes.", nullable=False),
    Column("upshifts", "long", "Quality changes to a higher bitrate.", nullable=False),
    Column("downshifts", "long", "Quality changes to a lower bitrate.", nullable=False),
    Column("start_failures", "long", "Sessions judged a start failure.", nullable=False),
    Column("exits_before_start", "long", "Sessions judged an exit before start.", nullable=False),
    Column("failures_after_start", "long", "Sessions judged a failure after start.", nullable=False),
)
"""The additive sums of docs/qoe.md, in the order of ``warehouse_models.metrics.qoe.QOE_FIELDS``."""

QOE_RATIO_COLUMNS: tuple[Column, ...] = (
    Column("video_startup_time_ms", "double", "startup_ms_sum / startups."),
    Column("rebuffering_ratio", "double", "(stall_ms / 1000) / (stall_ms / 1000 + playing_seconds)."),
    Column("rebuffers_per_hour", "double", "rebuffers x 3600 / playing_seconds."),
    Column("average_bitrate_kbps", "double", "bitrate_seconds_kbps / bitrate_seconds (time-weighted)."),
    Column("upshift_share", "double", "upshifts / quality_changes."),
    Column("downshift_share", "double", "downshifts / quality_changes."),
    Column("video_start_failure_rate", "double", "start_failures / plays."),
    Column("exit_before_start_rate", "double", "exits_before_start / plays."),
    Column("playback_failure_rate", "double", "failures_after_start / startups."),
)
"""The ratios of ``warehouse_models.metrics.qoe.qoe_metrics`` (null when the denominator is zero)."""

MART_QOE_HOURLY = TableSpec(
    "mart_qoe_hourly", "gold",
    (
        Column("content_id", "string", "Title or channel.", nullable=False),
        Column("device_type", "string", "Device kind.", nullable=False),
        Column("country", "string", "Country of the events ('unknown' when they carry none).", nullable=False),
        *QOE_SUM_COLUMNS,
        *QOE_RATIO_COLUMNS,
        Column("event_date", "date", "Event-time date of the hour.", nullable=False),
        Column("event_hour", "timestamp", "Start of the event-time hour (UTC); the partition.", nullable=False),
    ),
    ("event_hour",),
    "QoE per title, device type, country and hour: the speed layer's minute sums added up, and their ratios.",
)

MART_CTR_DAILY = TableSpec(
    "mart_ctr_daily", "gold",
    (
        Column("button_id", "string", "Button or tile kind.", nullable=False),
        Column("rail_id", "string", "Rail (row) of tiles.", nullable=False),
        Column("impressions", "long", "Impressions that day.", nullable=False),
        Column("clicks", "long", "Clicks that day.", nullable=False),
        Column("ctr", "double", "clicks / impressions (null without impressions)."),
        _EVENT_DATE,
    ),
    ("event_date",),
    "Click-through per button, rail and day.",
)

MART_SESSION_LENGTH = TableSpec(
    "mart_session_length", "gold",
    (
        Column("length_bucket", "string", "Session length bucket in minutes (0-1, 1-5, ... 120+).",
               nullable=False),
        Column("bucket_min_minutes", "int", "Lower bound of the bucket (inclusive), for sorting.", nullable=False),
        Column("bucket_max_minutes", "int", "Upper bound of the bucket (exclusive); null for 120+."),
        Column("sessions", "long", "Sessions started that day whose length falls in the bucket.", nullable=False),
        Column("share", "double", "sessions / all sessions started that day.", nullable=False),
        _EVENT_DATE,
    ),
    ("event_date",),
    "Distribution of session lengths (first to last event) per day; every bucket present, zeros included.",
)

MART_SEGMENTS = TableSpec(
    "mart_segments", "gold",
    (
        Column("device_type", "string", "Device kind ('unknown' when the events carry none).", nullable=False),
        Column("country", "string", "Country ('unknown' when the events carry none).", nullable=False),
        Column("users", "long", "Distinct users with events in the segment that day.", nullable=False),
        Column("sessions", "long", "Sessions started in the segment that day.", nullable=False),
        Column("watch_seconds", "double", "Seconds played in the segment that day.", nullable=False),
        _EVENT_DATE,
    ),
    ("event_date",),
    "Per device type x country and day: users, sessions and watch time.",
)

MART_CONCURRENCY_VIOLATIONS = TableSpec(
    "mart_concurrency_violations", "gold",
    (
        Column("account_id", "string", "Paying account.", nullable=False),
        Column("max_streams", "int", "Plan limit at the start of the day's first session over it.",
               nullable=False),
        Column("sessions", "long", "Sessions (with heartbeats) the account started that day.", nullable=False),
        Column("sessions_over_limit", "long", "Of those, the sessions that started over the plan limit.",
               nullable=False),
        Column("peak_streams", "long", "Most sessions streaming at once at a session start that day.",
               nullable=False),
        Column("over_limit_session_ids", "array<string>", "The sessions over the limit, sorted."),
        _EVENT_DATE,
    ),
    ("event_date",),
    "Per account and day with at least one session over its plan's concurrent-stream limit.",
)

def _interval(name: str, what: str) -> tuple[Column, ...]:
    return (Column(name, "double", what), Column(f"{name}_low", "double", "Lower end of its 95 % interval."),
            Column(f"{name}_high", "double", "Upper end of its 95 % interval."))


MART_RECS_VARIANTS_DAILY = TableSpec(
    "mart_recs_variants_daily", "gold",
    (
        Column("variant", "string", "Recommendation variant (warehouse_models/metrics/variants.py).", nullable=False),
        Column("impressions", "long", "Impressions of recommendation-rail tiles stamped with the variant.",
               nullable=False),
        Column("clicks", "long", "Clicks on those tiles.", nullable=False),
        *_interval("ctr", "clicks / impressions (Wilson interval); null without impressions."),
        Column("users", "long", "Users assigned to the variant (by the hash) who watched that day.", nullable=False),
        Column("watch_seconds", "double", "Their seconds played.", nullable=False),
        Column("watch_seconds_sq", "double", "Sum over them of the square of each one's seconds (for the interval).",
               nullable=False),
        *_interval("watch_seconds_per_user", "Mean seconds played per such user (normal interval)."),
        Column("views_ended", "long", "Ended views (view_end) of the variant's users.", nullable=False),
        Column("views_completed", "long", "Of those, views with completion_pct >= 90.", nullable=False),
        *_interval("completion_rate", "views_completed / views_ended (Wilson interval)."),
        _EVENT_DATE,
    ),
    ("event_date",),
    "Recommendation A/B variants per day: CTR on the recommendation rails by the variant stamped on the tiles, "
    "watch time per user and completion by the users' assigned variant, each with a 95 % confidence interval.",
)

MART_TABLES: tuple[TableSpec, ...] = (
    MART_USER_ENGAGEMENT_DAILY, MART_CONTENT_PERFORMANCE, MART_QOE_HOURLY, MART_CTR_DAILY, MART_SESSION_LENGTH,
    MART_SEGMENTS, MART_CONCURRENCY_VIOLATIONS, MART_RECS_VARIANTS_DAILY,
)
MARTS_BY_NAME: dict[str, TableSpec] = {t.name: t for t in MART_TABLES}
