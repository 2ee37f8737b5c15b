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
"""Minute viewer sets and the trending sets: a little longer than the trending window."""

CONCURRENCY_TTL_SECONDS = 6 * 3600
"""Per-account stream sets: long enough for a long film with pauses; refreshed by every heartbeat."""

TRAFFIC_TTL_SECONDS = 15 * 60
PROGRESS_TTL_SECONDS = 24 * 3600
RESUME_TTL_SECONDS = 90 * 24 * 3600
RECENT_ITEMS_TTL_SECONDS = 30 * 24 * 3600
RECENT_ITEMS_MAX = 50
RECENT_SEARCHES_MAX = 10
RECENT_SEARCHES_TTL_SECONDS = 7 * 24 * 3600
DECISIONS_TTL_SECONDS = 24 * 3600
"""Per-minute counts of authorize answers: a day of them for the dashboard and monitoring."""
NOTIFICATIONS_TTL_SECONDS = 30 * 24 * 3600
"""A notification feed lives this long after its newest notification."""
MODEL_TTL_SECONDS = 2 * 24 * 3600
"""A replaced recommendation model's keys linger this long (readers mid-request, a quick rollback)."""
BATCH_VIEW_TTL_SECONDS = 3 * 24 * 3600
"""Old batch versions linger this long after a newer one is published, for readers mid-request."""

ContentKind = Literal["vod", "live"]


HOUR_SECONDS = 3600
"""Width of the hourly speed aggregates (:meth:`KeyLayout.user_engagement_hour`, :meth:`KeyLayout.ctr_hour`)."""


def bucket_start(ts: datetime | float, width: int = SPEED_BUCKET_SECONDS) -> int:
    """Start (epoch seconds) of the bucket an event time falls in."""
    seconds = ts.astimezone(timezone.utc).timestamp() if isinstance(ts, datetime) else float(ts)
    return int(seconds // width) * width


@dataclass(frozen=True)
class KeyLayout:
    """Key builders for one prefix (a deployment or a test)."""

    prefix: str = "rl"

    # --- speed layer: additive, bucketed ------------------------------------------------------------
    # Every additive view is *set*, not incremented: a micro-batch writes the full value of each window it
    # touched (Spark's update output mode), so replaying a batch after a crash writes the same values again.
    def user_engagement_bucket(self, user_id: str, bucket: int) -> str:
        """Hash of one user's 5-second windows inside one minute bucket.

        Fields ``<window start epoch s>:watch_seconds``, ``...:events``, ``...:clicks``; the bucket's totals are
        the sums over its fields, so the serving layer adds whole buckets at or after W.
        """
        return f"{self.prefix}:speed:user:{user_id}:b:{bucket}"

    def user_engagement_hour(self, user_id: str, hour: int) -> str:
        """Hash of one user's totals over the windows that start in one hour (epoch s of its start): fields
        ``watch_seconds``, ``events``, ``clicks``. Added to with the minute buckets, in the same fenced script: a
        reader from an hour boundary (the batch watermark W always is one) adds a few hours instead of every
        minute bucket since W."""
        return f"{self.prefix}:speed:user:{user_id}:h:{hour}"

    def ctr_bucket(self, rail_id: str, button_id: str, bucket: int) -> str:
        """Hash of one rail/button in one minute: fields ``<content id>:impressions`` and ``<content id>:clicks``."""
        return f"{self.prefix}:speed:ctr:{rail_id}:{button_id}:b:{bucket}"

    def ctr_hour(self, rail_id: str, button_id: str, hour: int) -> str:
        """Hash of one rail/button's counts in the minute buckets of one hour: fields as :meth:`ctr_bucket`'s."""
        return f"{self.prefix}:speed:ctr:{rail_id}:{button_id}:h:{hour}"

    def ctr_rate(self, rail_id: str, button_id: str) -> str:
        """Hash: impressions, clicks and rate of one rail/button over the rolling trending window, and as_of."""
        return f"{self.prefix}:speed:ctr_rate:{rail_id}:{button_id}"

    def qoe_bucket(self, content_id: str, device_type: str, country: str, bucket: int) -> str:
        """Hash of the QoE sums of one slice in one minute (the fields are listed in docs/qoe.md)."""
        return f"{self.prefix}:speed:qoe:{content_id}:{device_type}:{country}:b:{bucket}"

    def traffic_bucket(self, scope: str, bucket: int) -> str:
        """Hash of events per second of one scope (``topic:<kind>`` or ``content:<id>``) in one minute.

        Fields are the second's epoch; the spike detector reads its moving baseline from here.
        """
        return f"{self.prefix}:speed:traffic:{scope}:b:{bucket}"

    # --- speed layer: sets and latest values -------------------------------------------------------
    # Trending has one scope per content kind (every country) and one per kind and country: ``country`` None is
    # the kind's global scope.
    @staticmethod
    def _trending_scope(kind: ContentKind, country: str | None) -> str:
        # A fixed part after the kind (``all`` or ``c:<country>``), so no content id can make one scope's key
        # another's (ids may hold colons).
        return f"{kind}:all" if country is None else f"{kind}:c:{country}"

    def trending_viewers(self, kind: ContentKind, content_id: str, country: str | None = None) -> str:
        """Sorted set: user id -> the newest minute (epoch s) the user was active on one title, in one scope (ZADD
        GT, so replays and late events never move a viewer back). The viewers of a window are those whose newest
        minute is in it: the window ends after every minute seen."""
        return f"{self.prefix}:speed:viewers:{self._trending_scope(kind, country)}:{content_id}"

    def trending_titles(self, kind: ContentKind, country: str | None = None) -> str:
        """Sorted set: content id -> the newest minute it had a viewer in one scope: the window's titles without a
        SCAN."""
        return f"{self.prefix}:speed:trending_titles:{self._trending_scope(kind, country)}"

    def trending_countries(self, kind: ContentKind) -> str:
        """Sorted set: country -> the newest minute it had a viewer of the kind: the window's country scopes."""
        return f"{self.prefix}:speed:trending_countries:{kind}"

    def trending_ranked_countries(self, kind: ContentKind) -> str:
        """Set of the countries that have a :meth:`trending` ranking of the kind now."""
        return f"{self.prefix}:speed:trending_ranked_countries:{kind}"

    def trending(self, kind: ContentKind, country: str | None = None) -> str:
        """Sorted set: content id -> distinct active viewers over the newest trending window, in one scope."""
        return f"{self.prefix}:speed:trending:{self._trending_scope(kind, country)}"

    def trending_window(self, kind: ContentKind, country: str | None = None) -> str:
        """Hash: start and end (epoch s) of the window :meth:`trending` holds, and when it was computed."""
        return f"{self.prefix}:speed:trending:{self._trending_scope(kind, country)}:window"

    def account_plan_limits(self) -> str:
        """Hash: account id -> the plan's concurrent-stream limit (from the catalog topic's user records)."""
        return f"{self.prefix}:speed:plan_limits"

    def account_plan_limit_times(self) -> str:
        """Hash: account id -> event time (ms) of the user record behind its plan limit (newest wins)."""
        return f"{self.prefix}:speed:plan_limits:at"

    def account_streams(self, account_id: str) -> str:
        """Sorted set: session id -> last heartbeat event time (ms); only ever moves forward (ZADD GT)."""
        return f"{self.prefix}:speed:streams:{account_id}"

    def account_stream_starts(self, account_id: str) -> str:
        """Sorted set: session id -> first heartbeat event time (ms); only ever moves back (ZADD LT)."""
        return f"{self.prefix}:speed:stream_starts:{account_id}"

    def live_sessions(self) -> str:
        """Sorted set of every account's sessions that have not ended explicitly: ``<account>/<session>`` -> last
        heartbeat (ms). Streams playing now: the members heard within the heartbeat timeout (one ZCOUNT)."""
        return f"{self.prefix}:speed:live_sessions"

    def account_streams_ended(self, account_id: str) -> str:
        """Sorted set: session id -> event time (ms) of its explicit end (play_end or a fatal error)."""
        return f"{self.prefix}:speed:streams_ended:{account_id}"

    def account_concurrency(self, account_id: str) -> str:
        """String (JSON): the one read behind "may this stream play?".

        ``{"limit", "active": [session ids, oldest first], "over_limit": [session ids, newest first],
        "as_of_ms"}``.
        """
        return f"{self.prefix}:speed:concurrency:{account_id}"

    def account_over_limit(self, account_id: str) -> str:
        """Sorted set of every session that started over the plan limit (score = start ms), newest first."""
        return f"{self.prefix}:speed:overlimit:{account_id}"

    def resume_position(self, user_id: str) -> str:
        """Hash: content id -> "<event time ms>:<position seconds>" (newest by event time wins)."""
        return f"{self.prefix}:resume:{user_id}"

    def recent_items(self, user_id: str) -> str:
        """Sorted set: content id -> last watched event time (ms), capped at RECENT_ITEMS_MAX."""
        return f"{self.prefix}:speed:recent:{user_id}"

    def recent_searches(self, user_id: str) -> str:
        """Sorted set: search text (trimmed, lower-cased) -> event time (ms) of its newest search; the newest
        :data:`RECENT_SEARCHES_MAX` kept."""
        return f"{self.prefix}:speed:searches:{user_id}"

    def spike_alerts(self) -> str:
        """Stream of traffic-spike alerts (raised and cleared)."""
        return f"{self.prefix}:speed:alerts"

    def spike_active(self) -> str:
        """Hash: scope -> JSON of its open alert (what, how much over baseline, since when)."""
        return f"{self.prefix}:speed:alerts:active"

    def spike_counting_since(self) -> str:
        """String: the first epoch second the spike detector counted; nothing is judged before a full baseline."""
        return f"{self.prefix}:speed:alerts:since"

    def spike_judged(self) -> str:
        """Hash: scope -> the last epoch second the spike detector judged (each second is judged once)."""
        return f"{self.prefix}:speed:alerts:judged"

    def speed_commit(self, query_name: str) -> str:
        """Last micro-batch id a query's view committed to Redis (fencing for replays); ``<query>/<view>``."""
        return f"{self.prefix}:speed:commit:{query_name}"

    def speed_cutoff(self, query_name: str) -> str:
        """Hash: the event-time cut-off of a query's additive views (see :mod:`speed_layer.lateness`):
        ``batch_id``, ``used_ms``, ``next_ms``, ``late_total``."""
        return f"{self.prefix}:speed:cutoff:{query_name}"

    def speed_progress(self, query_name: str) -> str:
        """Hash: the newest progress of a streaming query (rows/s, batch duration, watermark, state rows,
        rows dropped by the watermark, i.e. late events left to the batch layer)."""
        return f"{self.prefix}:speed:progress:{query_name}"

    def speed_queries(self) -> str:
        """Set: names of the streaming queries that reported progress (for `reelytics status`)."""
        return f"{self.prefix}:speed:queries"

    # --- batch layer: versioned ---------------------------------------------------------------------
    def batch_pointer(self) -> str:
        """String: the current batch version id."""
        return f"{self.prefix}:batch:current"

    def batch_meta(self, version: str) -> str:
        """Hash: watermark W (epoch seconds), published_at, row counts of one batch version."""
        return f"{self.prefix}:batch:{version}:meta"

    def batch_user_totals(self, version: str, user_id: str) -> str:
        """Hash: watch_seconds, events, clicks of one user over every event before the version's W."""
        return f"{self.prefix}:batch:{version}:user:{user_id}"

    def batch_content_totals(self, version: str, content_id: str) -> str:
        """Hash: views, watch_seconds, completed_views, completion_rate of one title before the version's W."""
        return f"{self.prefix}:batch:{version}:content:{content_id}"

    def batch_ctr(self, version: str, rail_id: str, button_id: str) -> str:
        """Hash of one rail/button before W: ``<content id>:impressions`` and ``<content id>:clicks``, the fields of
        :meth:`ctr_bucket`, so the serving layer adds the two field by field."""
        return f"{self.prefix}:batch:{version}:ctr:{rail_id}:{button_id}"

    def batch_qoe(self, version: str, content_id: str, device_type: str, country: str) -> str:
        """Hash of the QoE sums of one slice over every minute before W (the fields of :meth:`qoe_bucket`)."""
        return f"{self.prefix}:batch:{version}:qoe:{content_id}:{device_type}:{country}"

    def batch_trending_baselines(self, version: str, kind: ContentKind) -> str:
        """Hash: content id -> average distinct viewers per trending window over the day before W."""
        return f"{self.prefix}:batch:{version}:trending_baseline:{kind}"

    def batch_variants(self, version: str) -> str:
        """Hash of the recommendation variants' totals over ``recs_variant_days`` before W:
        ``<variant>:<total>`` for each total of :data:`warehouse_models.metrics.variants.TOTALS`."""
        return f"{self.prefix}:batch:{version}:variants"

    def batch_version_pattern(self, version: str) -> str:
        """A SCAN pattern over every key of one batch version (its meta included)."""
        return f"{self.prefix}:batch:{version}:*"

    # --- recommendation models: versioned like the batch views, on their own (daily) pointer ---------------------
    def model_pointer(self) -> str:
        """String: the published recommendation model version."""
        return f"{self.prefix}:models:current"

    def model_items(self, version: str) -> str:
        """Hash of one model version's catalog side, read once per version by each API process: ``bundle`` (an
        ``.npz`` of :data:`warehouse_models.recommendations.BUNDLE_ARRAYS`: ids, titles, item factors, TF-IDF rows
        and vocabulary, popularity per segment), ``meta`` (JSON: version, data range, metrics) and ``affinity`` (an
        ``.npz`` of :data:`warehouse_models.recommendations.AFFINITY_ARRAYS`, the users' genre affinities)."""
        return f"{self.prefix}:models:{version}:items"

    def model_user(self, version: str, user_id: str) -> str:
        """Hash of one user in a model version: ``factors`` (float32 bytes), ``seen`` (JSON ``[[title, weight],
        ...]``, the titles watched in the training range), ``recs`` (JSON ``[[title, score, because title or ""],
        ...]``) and ``segment``."""
        return f"{self.prefix}:models:{version}:user:{user_id}"

    def model_similar(self, version: str, content_id: str) -> str:
        """String: JSON ``[[content id, score], ...]``, the titles most like one title (content similarity)."""
        return f"{self.prefix}:models:{version}:similar:{content_id}"

    def notifications(self, user_id: str) -> str:
        """Sorted set: the user's notification feed, content id -> when the title was released to them (ms); the
        newest ``notify_feed_max`` kept (``ZADD NX``: a title notifies a user once)."""
        return f"{self.prefix}:notify:feed:{user_id}"

    def notifications_day(self, user_id: str, day: int) -> str:
        """String: notifications the user got on one UTC day (epoch day number), for the daily cap."""
        return f"{self.prefix}:notify:day:{user_id}:{day}"

    def releases(self) -> str:
        """Hash: content id -> JSON of a released title as its notifications show it (title, genres, when)."""
        return f"{self.prefix}:notify:releases"

    def model_version_pattern(self, version: str) -> str:
        return f"{self.prefix}:models:{version}:*"

    # --- serving layer ---------------------------------------------------------------------------------
    def playback_leases(self, account_id: str) -> str:
        """Sorted set: session id -> when its playback grant expires (ms); renewed by each allowed authorize."""
        return f"{self.prefix}:serving:leases:{account_id}"

    def playback_lease_starts(self, account_id: str) -> str:
        """Sorted set: session id -> when it was first allowed to play (ms): its place in the start order."""
        return f"{self.prefix}:serving:lease_starts:{account_id}"

    def playback_devices(self, account_id: str) -> str:
        """Hash: session id -> the device type it was authorized for."""
        return f"{self.prefix}:serving:devices:{account_id}"

    def playback_decisions(self, bucket: int) -> str:
        """Hash of one minute's authorize answers: ``allowed`` and ``denied:<reason>`` -> count."""
        return f"{self.prefix}:serving:decisions:b:{bucket}"

    def api_key(self, digest: str) -> str:
        """Hash of one API key, by the SHA-256 of the key (the key itself is never stored): ``name``,
        ``scopes`` (comma-separated), ``rate_per_second``, ``created_at``."""
        return f"{self.prefix}:serving:api_key:{digest}"

    def api_key_names(self) -> str:
        """Hash: key name -> its digest (names are unique; lists and revokes keys by name)."""
        return f"{self.prefix}:serving:api_keys"

    def pattern(self, area: str = "*") -> str:
        """A SCAN pattern over one area (speed, batch, resume) or all keys of this prefix."""
        return f"{self.prefix}:{area}:*" if area != "*" else f"{self.prefix}:*"
