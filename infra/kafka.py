"""The embedded Apache Kafka broker: KRaft, one combined broker+controller node on loopback.

Its jars come from Maven Central (`infra/install.sh` -> ``<cache>/jars/kafka-broker``). The storage is
formatted on first start; the topics are created from :class:`warehouse_models.topics.Topics`.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
from pathlib import Path

from infra.process import ManagedProcess, ServiceError, is_loopback, port_in_use, port_owner, wait_until
from warehouse_models.settings import Settings

logger = logging.getLogger(__name__)

_HERE = Path(__file__).resolve().parent
START_TIMEOUT_S = 90.0


def _process(settings: Settings) -> ManagedProcess:
    return ManagedProcess("kafka", settings.run_dir)


def _host_port(settings: Settings) -> tuple[str, int]:
    first = settings.kafka_bootstrap_list[0]
    host, _, port = first.rpartition(":")
    return host or "127.0.0.1", int(port or 9092)


def is_embedded(settings: Settings) -> bool:
    """True when the bootstrap servers point at this machine, so Reelytics runs the broker itself."""
    host, _ = _host_port(settings)
    return len(settings.kafka_bootstrap_list) == 1 and is_loopback(host)


def _classpath(settings: Settings) -> str:
    jars = settings.jars_dir / "kafka-broker"
    if not (jars / ".complete").exists():
        raise ServiceError(f"The Kafka broker jars are not in {jars}. Run `bash infra/install.sh` first.")
    return str(jars / "*")


def _java() -> str:
    java = shutil.which("java")
    if java is None:
        raise ServiceError("Java 17+ is needed to run Kafka: install a JDK (apt-get install openjdk-17-jdk-headless).")
    return java


def write_config(settings: Settings) -> Path:
    """Write server.properties (and the log4j2 config) under the data dir; return its path."""
    host, port = _host_port(settings)
    data = settings.data_dir / "kafka"
    data.mkdir(parents=True, exist_ok=True)
    template = (_HERE / "kafka-server.properties").read_text()
    text = template.format(
        host=host, port=port, controller_port=settings.kafka_controller_port, log_dirs=data / "logs",
        partitions=settings.kafka_partitions,
    )
    path = data / "server.properties"
    path.write_text(text)
    return path


def _run_java(settings: Settings, *args: str) -> str:
    import subprocess

    cmd = [_java(), "-cp", _classpath(settings), "-Dlog4j2.configurationFile=" + str(_HERE / "kafka-log4j2.properties"),
           *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)  # noqa: S603
    if done.returncode != 0:
        raise ServiceError(f"`{' '.join(args[:2])}` failed (exit {done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done.stdout.strip()


def format_storage(settings: Settings, config: Path) -> None:
    """Format the KRaft log dir once (meta.properties marks it formatted)."""
    if (settings.data_dir / "kafka" / "logs" / "meta.properties").exists():
        return
    cluster_id = _run_java(settings, "kafka.tools.StorageTool", "random-uuid").splitlines()[-1].strip()
    logger.info("formatting Kafka storage (cluster id %s)", cluster_id)
    _run_java(settings, "kafka.tools.StorageTool", "format", "--standalone", "-t", cluster_id, "-c", str(config))


def healthy(settings: Settings, *, timeout_s: float = 3.0) -> bool:
    """True when a broker answers a metadata request on the bootstrap servers."""
    from kafka import KafkaAdminClient

    host, port = _host_port(settings)
    if not port_in_use(host, port):  # the client would retry its bootstrap for 30 s; a closed port is a quick no
        return False
    try:
        ms = int(timeout_s * 1000)
        admin = KafkaAdminClient(**settings.kafka_admin_config(request_timeout_ms=ms, bootstrap_timeout_ms=ms))
    except Exception:
        return False
    try:
        admin.list_topics()
        return True
    except Exception:
        return False
    finally:
        admin.close()


def start(settings: Settings) -> str:
    """Start the embedded broker unless one already answers; create the topics. Returns what was done."""
    if healthy(settings):
        ensure_topics(settings)
        return "already running"
    if not is_embedded(settings):
        raise ServiceError(
            f"Kafka at {settings.kafka_bootstrap_servers} does not answer, and it is not on this machine, so "
            "Reelytics will not start it. Check REELYTICS_KAFKA_BOOTSTRAP_SERVERS and that the cluster is up."
        )
    host, port = _host_port(settings)
    proc = _process(settings)
    for p in (port, settings.kafka_controller_port):
        if port_in_use(host, p) and not proc.running():
            raise ServiceError(
                f"Port {p} on {host} is taken by {port_owner(p)}, so Kafka cannot listen there. Stop that process, "
                "or choose other ports with REELYTICS_KAFKA_BOOTSTRAP_SERVERS and REELYTICS_KAFKA_CONTROLLER_PORT."
            )
    config = write_config(settings)
    format_storage(settings, config)
    if not proc.running():
        heap = "-Xmx1g"
        proc.start(
            [_java(), heap, "-Xms256m", "-XX:+UseG1GC", "-Djava.awt.headless=true",
             "-Dlog4j2.configurationFile=" + str(_HERE / "kafka-log4j2.properties"),
             "-cp", _classpath(settings), "kafka.Kafka", str(config)],
        )
    wait_until(lambda: healthy(settings), timeout=START_TIMEOUT_S, what=f"Kafka on {host}:{port}",
               alive=proc.running, log_path=proc.log_path, interval=1.0)
    created = ensure_topics(settings)
    return f"started (pid {proc.pid()}), created topics: {', '.join(created) or 'none new'}"


def ensure_topics(settings: Settings, *, prefix: str | None = None) -> list[str]:
    """Create the topics of the layout that do not exist yet; return the names created."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    from warehouse_models.topics import Topics

    topics = Topics(prefix, partitions=settings.kafka_partitions) if prefix else settings.topics
    admin = KafkaAdminClient(**settings.kafka_admin_config())
    try:
        existing = set(admin.list_topics())
        new = [
            NewTopic(spec.name, spec.partitions, settings.kafka_replication_factor, topic_configs=spec.config)
            for spec in topics.all() if spec.name not in existing
        ]
        created: list[str] = []
        for topic in new:
            with contextlib.suppress(TopicAlreadyExistsError):  # made meanwhile by another process
                admin.create_topics([topic])
                created.append(topic.name)
        if created:
            logger.info("created topics %s", ", ".join(created))
        return created
    finally:
        admin.close()


def stop(settings: Settings) -> bool:
    return _process(settings).stop(timeout=60)


def kill(settings: Settings) -> None:
    """SIGKILL the embedded broker (fault-injection tests)."""
    _process(settings).kill()


def address(settings: Settings) -> str:
    return settings.kafka_bootstrap_servers


def managed_pid(settings: Settings) -> int | None:
    return _process(settings).pid()


def end_offsets(settings: Settings, topics: list[str]) -> dict[str, int]:
    """The end offset of each topic, summed over its partitions (0 for a topic the broker does not have)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(**settings.kafka_consumer_config())
    try:
        out: dict[str, int] = {}
        for name in topics:
            partitions = [TopicPartition(name, p) for p in sorted(consumer.partitions_for_topic(name) or ())]
            out[name] = sum(consumer.end_offsets(partitions).values()) if partitions else 0
        return out
    finally:
        consumer.close()


def topic_record_counts(settings: Settings) -> dict[str, int]:
    """Records currently held per topic of the layout (end minus beginning offsets, summed over partitions)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(**settings.kafka_consumer_config())
    try:
        counts: dict[str, int] = {}
        for name in settings.topics.names():
            partitions = [TopicPartition(name, p) for p in sorted(consumer.partitions_for_topic(name) or ())]
            if not partitions:
                continue
            end, begin = consumer.end_offsets(partitions), consumer.beginning_offsets(partitions)
            counts[name] = sum(end[tp] - begin[tp] for tp in partitions)
        return counts
    finally:
        consumer.close()
