"""The API's answers as pydantic models: what the OpenAPI document describes and every route returns."""

from __future__ import annotations

from datetime import date as date_type
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field


class Freshness(BaseModel):
    """What an answer is made of, and how fresh each part is."""

    layers: list[Literal["batch", "speed"]] = Field(description="The layers that answered.")
    as_of: datetime | None = Field(
        description="The batch watermark W: the batch part counts exactly the events before it; the speed part "
                    "counts the windows from W on. None without a batch part.")
    batch_version: str | None
    speed_lag_seconds: float | None = Field(
        description="Seconds since the speed layer finished its newest micro-batch (None: no progress known).")
    speed_kafka_lag: int | None = Field(description="Records the speed layer had not read at that batch.")
    complete: bool = Field(
        description="False when the batch part is older than the speed buckets' lifetime (3 h): events between "
                    "W and the oldest live bucket are missing until the batch layer publishes again.")


class Error(BaseModel):
    status: int
    code: str = Field(description="unauthorized, forbidden, not_found, invalid_parameter, rate_limited, "
                                  "unavailable or internal")
    message: str = Field(description="What went wrong and what to do.")
    parameters: list[str] | None = Field(default=None, description="For invalid_parameter: the bad ones.")


class ErrorBody(BaseModel):
    error: Error


class Counts(BaseModel):
    watch_seconds: int
    events: int
    clicks: int


class Window(Counts):
    start: datetime = Field(description="Start of the 5-second window (UTC).")


class Day(Counts):
    date: date_type = Field(description="UTC date.")


class Engagement(BaseModel):
    user_id: str
    totals: Counts = Field(description="All time: batch before W plus speed from W.")
    daily: list[Day] = Field(description="Per UTC date, the last `days` dates up to today, oldest first (zeros for "
                                         "a date without events): batch before W plus speed from W.")
    windows: list[Window] = Field(description="The 5-second windows of the last minutes, oldest first.")
    freshness: Freshness


class Position(BaseModel):
    content_id: str
    position_seconds: float
    event_time: datetime


class Resume(BaseModel):
    user_id: str
    positions: list[Position] = Field(description="Newest first.")
    freshness: Freshness


class RecentItem(BaseModel):
    content_id: str
    watched_at: datetime


class Recent(BaseModel):
    user_id: str
    items: list[RecentItem] = Field(description="Most recently watched first.")
    freshness: Freshness


class Reason(BaseModel):
    kind: Literal["because_you_watched", "trending_in_your_country", "matches_your_search", "popular"]
    content_id: str | None = Field(default=None, description="because_you_watched: the title watched.")
    title: str | None = Field(default=None, description="because_you_watched: its title.")
    query: str | None = Field(default=None, description="matches_your_search: the search.")


class RecentSearch(BaseModel):
    query: str
    searched_at: datetime


class RecommendedItem(BaseModel):
    content_id: str
    title: str
    score: float = Field(description="Hybrid score over this answer's candidates (higher is better).")
    reason: Reason


class Recommendations(BaseModel):
    user_id: str
    model_version: str = Field(description="The published model version the answer comes from.")
    variant: str = Field(description="The user's A/B variant (a stable hash of the user id): `live` re-ranks with "
                                     "what the user just did, `batch` serves the daily list. Stamp it as "
                                     "`rec_variant` on the impressions and clicks of these tiles.")
    known_user: bool = Field(description="The model was trained on this user (else: a cold start, served from "
                                         "what the user just watched and the segment's popularity).")
    segment: str = Field(description="The popularity segment used: country|device_type, or * for all.")
    recent: list[RecentItem] = Field(description="The titles just watched that steered this answer, newest first.")
    searches: list[RecentSearch] = Field(description="The recent searches that steered it, newest first.")
    items: list[RecommendedItem] = Field(description="Best first.")
    freshness: Freshness = Field(description="as_of: the end of the model's training data; speed lag: how fresh "
                                             "the recent titles are.")


class VariantFigures(BaseModel):
    variant: str
    share: float = Field(description="Percent of users assigned.")
    impressions: int | None = None
    clicks: int | None = None
    users: int | None = None
    views_ended: int | None = None
    views_completed: int | None = None
    ctr: float | None
    ctr_low: float | None = Field(description="Wilson 95 % interval of the CTR.")
    ctr_high: float | None
    watch_seconds_per_user: float | None
    watch_seconds_per_user_low: float | None = Field(description="Normal 95 % interval of the mean.")
    watch_seconds_per_user_high: float | None
    completion_rate: float | None
    completion_rate_low: float | None = Field(description="Wilson 95 % interval.")
    completion_rate_high: float | None


class Experiments(BaseModel):
    salt: str = Field(description="The experiment's hash salt (REELYTICS_RECS_VARIANT_SALT).")
    days: int = Field(description="Days before W the figures count.")
    variants: list[VariantFigures]
    freshness: Freshness


class Notification(BaseModel):
    content_id: str
    title: str | None
    genres: list[str] = Field(description="The title's genres: the taste it matched.")
    release_date: str | None
    notified_at: datetime


class Notifications(BaseModel):
    user_id: str
    items: list[Notification] = Field(description="Newest first.")
    freshness: Freshness


class SimilarItem(BaseModel):
    content_id: str
    title: str
    score: float = Field(description="Cosine of the two titles' TF-IDF vectors.")


class Similar(BaseModel):
    content_id: str
    model_version: str
    items: list[SimilarItem] = Field(description="Most similar first.")
    freshness: Freshness


class TrendingItem(BaseModel):
    content_id: str
    viewers: int = Field(description="Distinct viewers in the newest trending window.")
    baseline: float | None = Field(description="Viewers in an ordinary window of the day before W, over every "
                                               "country (None in a country's answer).")
    lift: float | None = Field(description="viewers / baseline.")


class Trending(BaseModel):
    kind: Literal["vod", "live"]
    country: str | None = Field(description="The country asked for; None: every country.")
    items: list[TrendingItem]
    freshness: Freshness


class DropoffPoint(BaseModel):
    percent: int = Field(description="Point of the duration, in percent.")
    share: float = Field(description="Share of the views that reached it.")


class ContentStats(BaseModel):
    content_id: str
    views: int
    watch_seconds: float
    completed_views: int | None = Field(description="None for live channels and titles without a duration.")
    completion_rate: float | None
    dropoff: list[DropoffPoint] | None = Field(
        description="Drop-off curve: the share of the views whose furthest position reached each point of the "
                    "duration, every 5 % from 0 to 100 % (never rises). None for live channels and titles without a "
                    "duration.")
    freshness: Freshness


class Ctr(BaseModel):
    rail_id: str
    button_id: str
    impressions: int
    clicks: int
    rate: float
    freshness: Freshness


class Qoe(BaseModel):
    content_id: str
    device_type: str
    country: str
    plays: int
    startups: int
    video_startup_time_ms: float | None
    rebuffering_ratio: float | None
    rebuffers: int
    rebuffers_per_hour: float | None
    average_bitrate_kbps: float | None
    upshift_share: float | None
    downshift_share: float | None
    start_failures: int
    video_start_failure_rate: float | None
    exits_before_start: int
    exit_before_start_rate: float | None
    failures_after_start: int
    playback_failure_rate: float | None
    freshness: Freshness


class Alerts(BaseModel):
    active: list[dict[str, object]] = Field(description="Open traffic-spike alerts.")
    recent: list[dict[str, object]] = Field(description="The newest alert entries, raised and cleared.")
    freshness: Freshness


class AccountStreams(BaseModel):
    account_id: str
    limit: int | None
    active: list[str] = Field(description="Sessions streaming now, earliest start first.")
    over_limit: list[str]
    as_of: datetime
    freshness: Freshness


class DecisionMinute(BaseModel):
    start: datetime
    counts: dict[str, int] = Field(description="allowed and denied:<reason> -> answers in the minute.")


class Decisions(BaseModel):
    minutes: list[DecisionMinute]
    freshness: Freshness


class AuthorizeRequest(BaseModel):
    account_id: str = Field(min_length=1, max_length=128)
    session_id: str = Field(min_length=1, max_length=128)
    device_type: str = Field(min_length=1, max_length=64)


class ActiveStream(BaseModel):
    session_id: str
    started_at: datetime
    device_type: str | None


class AuthorizeAnswer(BaseModel):
    allowed: bool
    reason: Literal["within_limit", "limit_unknown", "over_limit", "limit_reached", "session_ended"]
    limit: int | None = Field(description="The plan's concurrent-stream limit (None: no plan record seen).")
    active: list[ActiveStream] = Field(description="The account's playing sessions after this answer, earliest "
                                                   "start first.")


class FreshnessAnswer(BaseModel):
    freshness: Freshness


class Streams(BaseModel):
    playing: int = Field(description="Sessions heard within the heartbeat timeout of the newest heartbeat, not ended.")
    as_of: datetime | None


class RateItem(BaseModel):
    rail_id: str
    button_id: str
    impressions: int
    clicks: int
    rate: float


class QoeTitle(BaseModel):
    content_id: str
    plays: int
    video_startup_time_ms: float | None
    rebuffering_ratio: float | None
    video_start_failure_rate: float | None
    playback_failure_rate: float | None
    average_bitrate_kbps: float | None


class AlertsNow(BaseModel):
    active: list[dict[str, object]]
    recent: list[dict[str, object]]


class DagsterRun(BaseModel):
    run_id: str
    job: str
    status: str
    started: datetime | None
    ended: datetime | None


class DagsterRuns(BaseModel):
    runs: list[DagsterRun]
    error: str | None = None


class Dashboard(BaseModel):
    trending: dict[Literal["vod", "live"], list[TrendingItem]]
    streams: Streams
    decisions: list[DecisionMinute]
    ctr: list[RateItem]
    qoe_last_hour: list[QoeTitle]
    alerts: AlertsNow
    experiments: list[VariantFigures] = Field(
        description="Recommendation variants, as /v1/experiments/recommendations.")
    dagster: DagsterRuns
    freshness: Freshness
