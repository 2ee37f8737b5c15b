"""The one settings object: every endpoint and directory Reelytics uses.

Values come from environment variables prefixed ``REELYTICS_`` (e.g. ``REELYTICS_KAFKA_BOOTSTRAP_SERVERS``)
or from keyword arguments; the defaults run everything on one machine over loopback. Nothing reads the
environment at import time: call :func:`load_settings` (or build :class:`Settings`) where it is needed.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlparse

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from warehouse_models.redis_keys import KeyLayout
    from warehouse_models.topics import Topics


DELTA_RETENTION_CHECK_HOURS = 168.0
"""Delta's default ``delta.deletedFileRetentionDuration`` (7 days): VACUUM refuses a shorter retention unless its
safety check (``spark.databricks.delta.retentionDurationCheck.enabled``) is turned off, because a reader or a
writer that started before the vacuum may still need the files it would delete."""


def _default_cache_dir() -> Path:
    return Path.home() / ".cache" / "reelytics"


def _default_data_dir() -> Path:
    return Path.home() / ".local" / "share" / "reelytics"


class Settings(BaseSettings):
    """Where every service is and where every file goes."""

    model_config = SettingsConfigDict(env_prefix="REELYTICS_", extra="forbid", frozen=True)

    data_dir: Path = Field(default_factory=_default_data_dir)
    """Root of the mutable state the embedded services keep (Kafka log dirs, Redis AOF, Dagster home, Delta)."""

    cache_dir: Path = Field(default_factory=_default_cache_dir)
    """Where `infra/install.sh` put the virtualenv and the Maven jars; read to find the jars."""

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    """Comma-separated host:port list of Kafka brokers."""

    spark_kafka_fetch_max_wait_ms: int = Field(default=10, ge=0)
    """How long the broker may hold a Spark reader's fetch for more data (Kafka's ``fetch.max.wait.ms``, default
    500). Spark reads each partition up to a known offset, so the wait at the end of each partition is dead time:
    at Kafka's default a micro-batch over four 6-partition topics waited seconds; 10 ms measured ~0.5 s per topic
    less on one machine."""

    kafka_controller_port: int = 9093
    """Port of the embedded KRaft controller listener (only used when Reelytics starts the broker)."""

    kafka_topic_prefix: str = "reelytics"
    """Prefix of every topic name, so several deployments (or tests) can share one cluster."""

    kafka_partitions: int = Field(default=6, ge=1)
    """Partitions of the high-volume topics when Reelytics creates them."""

    kafka_replication_factor: int = Field(default=1, ge=1)
    """Replication factor of topics Reelytics creates (1 on one machine, 3 on a cluster)."""

    redis_url: str = "redis://127.0.0.1:6379/0"
    """Redis URL (redis://host:port/db). A password here or in `redis_password`."""

    redis_password: SecretStr | None = None
    """Password for Redis (`requirepass`); None for none."""

    redis_key_prefix: str = "rl"
    """Prefix of every Redis key Reelytics writes."""

    redis_timeout_seconds: float = Field(default=30.0, gt=0)
    """Seconds a Redis command waits for its reply (and a connection to open) before it fails with redis-py's
    ``TimeoutError``: a Redis that stops answering (paused, or cut off without a reset) fails the micro-batch,
    the publish or the command, with an error naming it, instead of hanging it for ever. Far above any one
    command's time (Redis answers a pipeline's commands as it runs them). The API's own requests use 1 s."""

    spark_master: str = "local[2]"
    """Spark master URL: local[N] on one machine, spark://, yarn or k8s:// on a cluster."""

    spark_driver_memory: str = "2g"
    """Driver memory for local mode (the driver is the executor there)."""

    spark_jvm_options: str = "-XX:+UseParallelGC"
    """Extra options of the driver's and the executors' JVMs. Parallel GC by default: the JVM's default, G1, met
    Spark's large buffers as humongous allocations and ran a concurrent marking cycle for most of them (about 15
    CPU-seconds per hourly rebuild of a million events on two cores); Parallel GC collects in short pauses instead,
    and the same rebuild on a cold JVM took 62.7-66.7 s against 73.0-85.2 s with G1 (three runs each, taken in
    turn). Empty: the JVM's defaults."""

    spark_shuffle_partitions: int = Field(default=4, ge=1)
    """spark.sql.shuffle.partitions: small on one machine, larger on a cluster."""

    spark_delta_write_bin_mb: int = Field(default=64, ge=1)
    """spark.databricks.delta.optimizeWrite.binSize: megabytes of shuffled rows per file of an optimized write (the
    gold tables). Delta's default, 512, put a day's facts in one file written by one task while the other core
    waited; 64 writes an hour of a million events with both cores and a day in a handful of files."""

    spark_delta_snapshot_partitions: int = Field(default=2, ge=1)
    """spark.databricks.delta.snapshotPartitions: tasks that replay a Delta table's log into its snapshot. Delta's
    default, 50, suits a cluster and a long log; on one machine each of those tasks compiles the log's decoder
    again, so every read or write of a small table paid for 50 of them."""

    marts_concurrent_writes: int = Field(default=4, ge=1)
    """Marts computed and written at once by one build (each from its own driver thread, sharing the cached facts).
    Each mart has driver-side steps (planning, a Delta commit, reading its log) while a core waits; with 4 at a
    time the marts of an hour of a million events took 20-21 s warm where one after the other took 23-28 s.
    1: one after the other."""

    spark_file_listing_parallelism: int = Field(default=2, ge=1)
    """spark.sql.sources.parallelPartitionDiscovery.parallelism: the most tasks a distributed file listing uses
    (Delta's VACUUM lists a table's files this way). Spark's default, 10,000, made each VACUUM of a small table
    take about a minute on one machine; raise it on a cluster with tables of many partitions."""

    delta_root: str | None = None
    """Root of the Delta tables: a path or an object-store URI (s3a://...). Default: <data_dir>/delta."""

    dagster_home: Path | None = None
    """DAGSTER_HOME for the local Dagster instance. Default: <data_dir>/dagster."""

    dagster_webserver_host: str = "127.0.0.1"
    dagster_webserver_port: int = 3000

    serving_host: str = "127.0.0.1"
    """Bind address of the serving API and the collector."""

    serving_port: int = 8080

    speed_metrics_host: str = "127.0.0.1"
    speed_metrics_port: int = Field(default=8082, ge=0, le=65535)
    """Where the speed layer's main process serves Prometheus metrics (0: not served)."""

    prometheus_host: str = "127.0.0.1"
    prometheus_port: int = Field(default=9090, ge=1, le=65535)
    """The Prometheus server `reelytics up` starts (Debian's package), scraping the API, collector and speed layer."""

    serving_rate_per_second: float = Field(default=200.0, gt=0)
    """Requests per second one API key may make (a token bucket per key and API process, bursts up to twice
    this); a key can carry its own rate (`reelytics api keys create --rate`). Over it: 429 with Retry-After."""

    serving_max_body_bytes: int = Field(default=16_384, ge=1_024)
    """The largest request body the serving API reads (an authorize body is about 100 bytes); a larger one is
    answered 413 without being read into memory, and its connection closed."""

    serving_request_read_timeout_seconds: float = Field(default=30.0, gt=0)
    """How long the API and the collector wait for a request to arrive whole, from its first byte (or the
    connection's opening) to the end of its body; a slower one is answered 408 and its connection closed, so a
    client that sends nothing, or a byte at a time, cannot hold connections open."""

    serving_lease_seconds: int = Field(default=30, ge=1)
    """How long an allowed `POST /v1/playback/authorize` holds its slot without a heartbeat or another
    authorize: a player that authorizes and then never streams frees it after this long."""

    collector_host: str = "127.0.0.1"
    """Bind address of the collector (player SDKs POST events here)."""

    collector_port: int = 8081

    collector_max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    """Largest request body the collector reads (after gzip decompression); larger answers 413."""

    collector_max_batch_events: int = Field(default=5000, ge=1)
    """Most events in one request; more answers 413."""

    checkpoint_root: str | None = None
    """Root of the Spark streaming checkpoints (a path or URI). Default: <data_dir>/checkpoints."""

    speed_trigger_seconds: float = Field(default=1.0, gt=0)
    """Micro-batch interval of the speed layer's queries (processing time)."""

    speed_background_niceness: int = Field(default=10, ge=0, le=19)
    """``python -m speed_layer`` runs the session-state queries (``speed_background_views``) in a child process of
    their own at this much lower CPU priority (Unix niceness), while apps poll the shared query's views. 0 runs
    every query in one process. On two cores under 1,000-2,000 events/s, 5 instead of 10 brought view_end's lag
    p95 from 3.8 to 3.3 s and cost the shared views about 1 s of p95 (one run each, docs/speed_layer.md)."""

    speed_background_views: str = "view_end"
    """The session-state views the low-priority child runs (comma-separated; the others run in the main process;
    only view_end keeps session state). On two cores view_end in the main process is visible sooner after its rule
    allows it, but its micro-batch every second (its own Kafka read, parse and de-duplication) takes the shared
    query's cores (p95 3.1 -> 6.5 s at 2,000 events/s, measured side by side): the views apps poll come first
    here. With cores to spare (a cluster), empty."""

    speed_allowed_lateness_seconds: int = Field(default=120, ge=0)
    """Watermark delay of the speed layer: events later than this are left to the batch layer (and counted)."""

    speed_heartbeat_timeout_seconds: int = Field(default=30, ge=1)
    """A session is active while it heartbeats; this long without a heartbeat ends it (view_end, concurrency)."""

    speed_trending_window_seconds: int = Field(default=600, ge=60)
    """Trending counts distinct viewers over this window..."""

    speed_trending_slide_seconds: int = Field(default=60, ge=1)
    """...sliding by this much."""

    speed_spike_baseline_seconds: int = Field(default=120, ge=10)
    """The moving baseline of the traffic-spike alerts: mean events/s over this many seconds before now."""

    speed_spike_factor: float = Field(default=3.0, gt=1.0)
    """An alert is raised when events/s exceed the baseline by this factor..."""

    speed_spike_min_eps: float = Field(default=5.0, ge=0)
    """...and this many events/s (so a quiet title going from 0.1 to 1 event/s is not a spike)."""

    speed_source_partitions: int = Field(default=2, ge=1)
    """Spark partitions each speed query reads Kafka into (coalesced from one per Kafka partition): fewer tasks
    per micro-batch on one machine; on a cluster, the executor cores the speed layer may use."""

    speed_shuffle_partitions: int = Field(default=1, ge=1)
    """Shuffle (and state store) partitions of the speed layer's stateful queries, fixed when a checkpoint is
    created, and of the shared query's de-duplication. One on one machine: a task per micro-batch and stateful
    operator, not one per core that would wait for the others. Raise it with the executor cores of a cluster."""

    speed_local_task_slots: int = Field(default=6, ge=1)
    """Task slots of the speed layer's own Spark (`python -m speed_layer`) when its master is local: a local[N]
    master with fewer slots is raised to local[<this>]. The speed queries' tasks wait on Kafka and Redis much of
    the time, view_end's tasks must never hold every slot the shared query needs, and the real-time mode needs a
    slot per Kafka partition; the cores are shared by the operating system. A cluster master is used as it is."""

    speed_writer_threads: int = Field(default=4, ge=1)
    """Threads that write the shared query's views of one micro-batch side by side, each view on a connection of
    its own from the writer's pool: one view's Python runs while Redis executes another's commands (Redis works one
    command at a time, Python one thread at a time, so more threads gain little on one machine). 1 writes the
    views one after another."""

    speed_starting_offsets: Literal["earliest", "latest"] = "earliest"
    """Where a speed query with a new checkpoint starts reading: the whole topics, or only what comes next (a
    restarted query always continues from its checkpoint)."""

    speed_kafka_max_offsets_per_trigger: int | None = Field(default=None, ge=1)
    """Cap on Kafka records per micro-batch (None: everything available), to bound a catch-up batch."""

    speed_realtime_checkpoint_seconds: float = Field(default=5.0, ge=5.0)
    """Batch duration of the real-time resume query (`python -m speed_layer --realtime-resume`): how often Spark's
    real-time mode checkpoints, at least its minimum of 5 s. Rows reach a Python ``ForeachWriter`` in pickled
    chunks (1, 2, 4, ... rows) or when the batch ends, so this also bounds how long a row can wait."""

    delta_vacuum_retention_hours: float = Field(default=DELTA_RETENTION_CHECK_HOURS, ge=0)
    """The daily maintenance VACUUM deletes data files no longer in a table version younger than this (and so
    ends time travel to older versions). Under 168 hours is refused unless `delta_vacuum_allow_short_retention`."""

    delta_vacuum_allow_short_retention: bool = False
    """Allow a `delta_vacuum_retention_hours` under Delta's 168-hour safety check (turns the check off for the
    vacuum): only when no job or reader can still be using a version older than the retention."""

    reconcile_max_relative_drift: float = Field(default=0.01, ge=0)
    """The reconciliation check fails when, for a view and a closed hour, the speed layer's buckets differ from
    the batch result by more than this share of the batch total (summed per key, so errors cannot cancel)."""

    quality_position_tolerance_seconds: float = Field(default=30.0, ge=0)
    """How far past its title's duration a playhead position may be before the fact check counts it as wrong: a
    player reports the position of its last heartbeat, which may overshoot the end by a heartbeat interval."""

    quality_freshness_max_age_seconds: int = Field(default=2 * 3600, ge=60)
    """The freshness check warns when the newest event time in ``silver_events`` is older than this: the hourly
    run builds each hour a few minutes after it closes, so live traffic keeps it under about 70 minutes."""

    models_dir: Path | None = None
    """Where trained recommendation models are kept, one folder per version with its manifest (parameters, data
    range, metrics). Default: <data_dir>/models. On a cluster, a path every trainer and API host shares."""

    recs_weighting: Literal["log", "bm25", "none"] = "log"
    """How a user's watch strength of a title (watch minutes x (1 + completion)) becomes ALS confidence: ``log``
    (log1p, so a binge does not drown everything else), ``bm25`` (implicit's BM25, damping prolific users and very
    popular titles) or ``none`` (the strength as it is)."""

    recs_factors: int = Field(default=64, ge=2)
    """Latent factors of the ALS model."""

    recs_regularization: float = Field(default=0.05, ge=0)
    recs_iterations: int = Field(default=15, ge=1)
    recs_alpha: float = Field(default=2.0, gt=0)
    """ALS confidence scale: confidence = 1 + alpha x weighted strength."""

    recs_history_days: int = Field(default=30, ge=1)
    """Days of gold facts the daily training reads (ending with the partition's day)."""

    recs_holdout_days: int = Field(default=1, ge=1)
    """The newest days of that range held out to evaluate the candidate model (time-based split)."""

    recs_eval_users: int = Field(default=5000, ge=1)
    """At most this many held-out users are scored per model in an evaluation (a seeded sample beyond it)."""

    recs_promote_margin: float = Field(default=0.05, ge=0, le=1)
    """A new model is published only if its hybrid NDCG@10 is at least (1 - margin) x the current model's."""

    recs_top_n: int = Field(default=50, ge=1)
    """Recommendations per user and similar titles per title kept in Delta and Redis."""

    recs_als_weight: float = Field(default=0.5, ge=0)
    recs_content_weight: float = Field(default=0.4, ge=0)
    recs_popularity_weight: float = Field(default=1.0, ge=0)
    """The hybrid's score of a title is the weighted sum of its ALS, content-similarity and segment-popularity
    scores, each scaled to [0, 1] per user. The defaults scored best of a small grid on the simulated world (see
    docs/recommendations.md); a cold user has no ALS term."""

    notify_max_per_day: int = Field(default=3, ge=0)
    """Release notifications one user gets per UTC day at most (0: none)."""

    notify_feed_max: int = Field(default=50, ge=1)
    """Notifications kept in a user's feed (the newest)."""

    notify_min_affinity: float = Field(default=0.2, ge=0)
    """A release notifies the users whose taste for its genres (main genre's share of their watching plus half
    the second's, smoothed towards everyone's shares) is at least this. On the simulated world 0.2 notifies about
    60 % of a genre's planted fans, and 84 % of those notified are fans (0.25: 34 % and 93 %)."""

    notify_max_users: int = Field(default=5000, ge=1)
    """At most this many users (the best matching) are notified of one release."""

    notify_release_days: int = Field(default=30, ge=0)
    """A catalog upsert is a release when the title's release date is at most this many days before it (older
    titles coming back in the catalog notify nobody)."""

    recs_variants: str = "live=50,batch=50"
    """Recommendation A/B variants and their shares of users (percent, adding up to 100), assigned by a stable hash
    of the user id: ``live`` re-ranks the daily list at request time with what the user just watched and searched,
    ``batch`` serves the daily list as it is. See warehouse_models/metrics/variants.py."""

    recs_variant_salt: str = "recs-2026-12"
    """Salt of the variant hash: a new salt reshuffles users into a new experiment."""

    recs_variant_days: int = Field(default=14, ge=1)
    """The batch views' variant figures count the events of this many days before W."""

    recs_live_weight: float = Field(default=1.0, ge=0)
    """At request time, how strongly the titles a user just watched steer the user's factors."""

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("kafka_topic_prefix", "redis_key_prefix")
    @classmethod
    def _no_separators(cls, value: str) -> str:
        if not value or any(ch in value for ch in " :/"):
            raise ValueError("must be non-empty without spaces, ':' or '/'")
        return value

    @field_validator("recs_variants")
    @classmethod
    def _variants_parse(cls, value: str) -> str:
        from warehouse_models.metrics.variants import parse_variants

        parse_variants(value)
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str) -> str:
        if urlparse(value).scheme not in {"redis", "rediss", "unix"}:
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @model_validator(mode="after")
    def _vacuum_retention_is_safe(self) -> Settings:
        if self.delta_vacuum_retention_hours < DELTA_RETENTION_CHECK_HOURS and \
                not self.delta_vacuum_allow_short_retention:
            raise ValueError(
                f"delta_vacuum_retention_hours={self.delta_vacuum_retention_hours:g} is under Delta's "
                f"{DELTA_RETENTION_CHECK_HOURS:g}-hour safety check: raise it, or set "
                "REELYTICS_DELTA_VACUUM_ALLOW_SHORT_RETENTION=true if no job or reader can still use older versions"
            )
        return self

    # --- derived locations ------------------------------------------------------------------------
    @property
    def delta_root_uri(self) -> str:
        """The Delta root as a string (a path or an URI)."""
        return self.delta_root or str(self.data_dir / "delta")

    @property
    def models_path(self) -> Path:
        return self.models_dir or self.data_dir / "models"

    @property
    def checkpoint_root_uri(self) -> str:
        return self.checkpoint_root or str(self.data_dir / "checkpoints")

    @property
    def dagster_home_dir(self) -> Path:
        return self.dagster_home or self.data_dir / "dagster"

    @property
    def jars_dir(self) -> Path:
        return self.cache_dir / "jars"

    @property
    def run_dir(self) -> Path:
        """PID files and logs of the services Reelytics started."""
        return self.data_dir / "run"

    @property
    def kafka_bootstrap_list(self) -> list[str]:
        return [s.strip() for s in self.kafka_bootstrap_servers.split(",") if s.strip()]

    @property
    def topics(self) -> Topics:
        from warehouse_models.topics import Topics

        return Topics(self.kafka_topic_prefix, partitions=self.kafka_partitions)

    def speed_query_name(self, query: str) -> str:
        """``speed-<query>@<topic prefix>``: a speed query's name, unique per deployment; its progress row in Redis
        (``KeyLayout.speed_progress``) and `reelytics status` go by it."""
        return f"speed-{query}@{self.kafka_topic_prefix}"

    @property
    def keys(self) -> KeyLayout:
        from warehouse_models.redis_keys import KeyLayout

        return KeyLayout(self.redis_key_prefix)

    # --- client configurations -----------------------------------------------------------------------
    def kafka_producer_config(self, **overrides: Any) -> dict[str, Any]:
        """kafka-python KafkaProducer config: acks=all, idempotent, compressed."""
        config: dict[str, Any] = {
            "bootstrap_servers": self.kafka_bootstrap_list,
            "acks": "all",
            "enable_idempotence": True,
            "compression_type": "lz4",
            "linger_ms": 5,
            "batch_size": 256 * 1024,
            "client_id": "reelytics",
        }
        config.update(overrides)
        return config

    def kafka_consumer_config(self, **overrides: Any) -> dict[str, Any]:
        """kafka-python KafkaConsumer config."""
        config: dict[str, Any] = {
            "bootstrap_servers": self.kafka_bootstrap_list,
            "auto_offset_reset": "earliest",
            "enable_auto_commit": False,
            "client_id": "reelytics",
        }
        config.update(overrides)
        return config

    def kafka_admin_config(self, **overrides: Any) -> dict[str, Any]:
        config: dict[str, Any] = {"bootstrap_servers": self.kafka_bootstrap_list, "client_id": "reelytics-admin"}
        config.update(overrides)
        return config

    def spark_kafka_options(self) -> dict[str, str]:
        """Options for Spark's Kafka source and sink (`kafka.`-prefixed client settings)."""
        return {"kafka.bootstrap.servers": ",".join(self.kafka_bootstrap_list)}

    def spark_kafka_source_options(self) -> dict[str, str]:
        """Options for Spark's Kafka source: the connection plus the consumer's fetch wait."""
        return {**self.spark_kafka_options(), "kafka.fetch.max.wait.ms": str(self.spark_kafka_fetch_max_wait_ms)}

    def redis_client(self, *, db: int | None = None, decode_responses: bool = False, lean: bool = False) -> Any:
        """A redis-py client for `redis_url` (password from `redis_password` when set); ``db`` replaces the URL's
        database (redis-py's ``from_url`` would let the URL's own win); ``lean``: its pipelines are
        :class:`~warehouse_models.redis_lean.LeanPipeline` and its commands packed by
        :class:`~warehouse_models.redis_lean.LeanPacker` (for writers of large pipelines and script calls)."""
        import redis

        from warehouse_models.redis_lean import LeanPacker, LeanRedis

        kwargs: dict[str, Any] = {"decode_responses": decode_responses,
                                  "socket_timeout": self.redis_timeout_seconds,
                                  "socket_connect_timeout": self.redis_timeout_seconds}
        if self.redis_password is not None:
            kwargs["password"] = self.redis_password.get_secret_value()
        url = self.redis_url
        if db is not None:
            parsed = urlparse(url)
            url = parsed._replace(path=f"/{db}").geturl() if parsed.scheme != "unix" else url
            kwargs["db"] = db
        if lean:
            return LeanRedis.from_url(url, command_packer=LeanPacker(), **kwargs)
        return redis.Redis.from_url(url, **kwargs)

    def redis_async_client(self, **options: Any) -> Any:
        """A redis-py asyncio client for `redis_url` (password from `redis_password` when set; ``options`` win
        over the `redis_timeout_seconds` timeouts)."""
        import redis.asyncio

        options = {"socket_timeout": self.redis_timeout_seconds,
                   "socket_connect_timeout": self.redis_timeout_seconds, **options}
        if self.redis_password is not None:
            options["password"] = self.redis_password.get_secret_value()
        return redis.asyncio.Redis.from_url(self.redis_url, **options)

    @property
    def redis_host_port(self) -> tuple[str, int]:
        parsed = urlparse(self.redis_url)
        return parsed.hostname or "127.0.0.1", parsed.port or 6379


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment (``REELYTICS_*``), with keyword overrides on top."""
    return Settings(**overrides)


def settings_environment(settings: Settings) -> dict[str, str]:
    """The ``REELYTICS_*`` variables that rebuild ``settings`` in another process (unset fields are left out)."""
    env: dict[str, str] = {}
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if value is None:
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        env[f"REELYTICS_{name.upper()}"] = str(value)
    return env
