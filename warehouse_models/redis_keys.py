"""The Redis key layout: every key Reelytics reads or writes is built here, with its TTL.

Speed views are time-bucketed increments (``...:b:<bucket start epoch seconds>``) so the serving layer can
merge ``batch(W) + speed(buckets >= W)``; batch views live under a version and are published by swapping
a pointer; every speed key has a TTL so memory stays bounded.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Literal

SPEED_BUCKET_SECONDS = 60
"""Width of the speed layer's additive buckets: the serving layer sums the buckets at or after W."""

SPEED_BUCKET_TTL_SECONDS = 3 * 3600
"""Speed buckets outlive the batch layer's hourly cycle (and one failed run) and then expire."""

TRENDING_TTL_SECONDS = 15 * 60
CONCURRENCY_TTL_SECONDS = 120
RESUME_TTL_SECONDS = 90 * 24 * 3600
RECENT_ITEMS_TTL_SECONDS = 30 * 24 * 3600
RECENT_ITEMS_MAX = 50
BATCH_VIEW_TTL_SECONDS = 3 * 24 * 3600
"""Old batch versions linger this long after a newer one is published, for readers mid-request."""

ContentKind = Literal["vod", "live"]


def bucket_start(ts: datetime | float, width: int = SPEED_BUCKET_SECONDS) -> int:
    """Start (epoch seconds) of the bucket an event time falls in."""
    seconds = ts.astimezone(timezone.utc).timestamp() if isinstance(ts, datetime) else float(ts)
    return int(seconds // width) * width


@dataclass(frozen=True)
class KeyLayout:
    """Key builders for one prefix (a deployment or a test)."""

    prefix: str = "rl"

    # --- speed layer: additive, bucketed ------------------------------------------------------------
    def user_engagement_bucket(self, user_id: str, bucket: int) -> str:
        """Hash: watch_seconds, events, clicks for one user in one bucket."""
        return f"{self.prefix}:speed:user:{user_id}:b:{bucket}"

    def content_views_bucket(self, content_id: str, bucket: int) -> str:
        """Hash: views, watch_seconds for one title in one bucket."""
        return f"{self.prefix}:speed:content:{content_id}:b:{bucket}"

    def ctr_bucket(self, rail_id: str, button_id: str, bucket: int) -> str:
        """Hash: impressions, clicks for one rail/button in one bucket."""
        return f"{self.prefix}:speed:ctr:{rail_id}:{button_id}:b:{bucket}"

    def qoe_bucket(self, content_id: str, device_type: str, country: str, bucket: int) -> str:
        """Hash of QoE sums (startup_ms, stall_ms, play_ms, ...) for one slice in one bucket."""
        return f"{self.prefix}:speed:qoe:{content_id}:{device_type}:{country}:b:{bucket}"

    # --- speed layer: latest values and sets -------------------------------------------------------
    def trending(self, kind: ContentKind) -> str:
        """Sorted set: content id -> distinct active viewers over the last 10 minutes."""
        return f"{self.prefix}:speed:trending:{kind}"

    def account_streams(self, account_id: str) -> str:
        """Hash: session id -> last heartbeat event time (ms); the account's active streams."""
        return f"{self.prefix}:speed:streams:{account_id}"

    def account_over_limit(self, account_id: str) -> str:
        """Sorted set of sessions over the plan limit, newest first (score = start ms)."""
        return f"{self.prefix}:speed:overlimit:{account_id}"

    def resume_position(self, user_id: str) -> str:
        """Hash: content id -> "<event time ms>:<position seconds>" (newest by event time wins)."""
        return f"{self.prefix}:resume:{user_id}"

    def recent_items(self, user_id: str) -> str:
        """Sorted set: content id -> last watched event time (ms), capped at RECENT_ITEMS_MAX."""
        return f"{self.prefix}:speed:recent:{user_id}"

    def spike_alerts(self) -> str:
        """Stream of traffic-spike alerts."""
        return f"{self.prefix}:speed:alerts"

    def speed_commit(self, query_name: str) -> str:
        """Last micro-batch id each streaming query committed to Redis (fencing for replays)."""
        return f"{self.prefix}:speed:commit:{query_name}"

    def speed_progress(self, query_name: str) -> str:
        """Hash: the newest progress of a streaming query (rows/s, batch duration, watermark, lag)."""
        return f"{self.prefix}:speed:progress:{query_name}"

    # --- batch layer: versioned ---------------------------------------------------------------------
    def batch_pointer(self) -> str:
        """String: the current batch version id."""
        return f"{self.prefix}:batch:current"

    def batch_meta(self, version: str) -> str:
        """Hash: watermark W (epoch seconds), published_at, row counts of one batch version."""
        return f"{self.prefix}:batch:{version}:meta"

    def batch_user_totals(self, version: str, user_id: str) -> str:
        return f"{self.prefix}:batch:{version}:user:{user_id}"

    def batch_content_totals(self, version: str, content_id: str) -> str:
        return f"{self.prefix}:batch:{version}:content:{content_id}"

    def batch_recommendations(self, version: str, user_id: str) -> str:
        return f"{self.prefix}:batch:{version}:recs:{user_id}"

    def pattern(self, area: str = "*") -> str:
        """A SCAN pattern over one area (speed, batch, resume) or all keys of this prefix."""
        return f"{self.prefix}:{area}:*" if area != "*" else f"{self.prefix}:*"
