"""`reelytics dlq`: dead-letter counts by field and reason, and the newest samples, from the table or the topic.

Reasons carry the offending value (``device_type: 'toaster' is not one of ...``); counts group them by the
field and the reason with quoted values and numbers masked, so one kind of problem is one line.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from warehouse_models.settings import Settings, load_settings
from warehouse_models.tables import DEAD_LETTER

logger = logging.getLogger(__name__)

_QUOTED = re.compile(r"'[^']*'")
_NUMBER = re.compile(r"(?<![\w.-])-?\d+(?:\.\d+)?(?:e[+-]?\d+)?(?![\w.])", re.IGNORECASE)
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T[\d:.]+Z")
_PAREN = re.compile(r"\((\w+Error): .*\)$")

_SAMPLE_COLUMNS = ("received_at", "stage", "reason", "source", "event_id", "raw_payload")


class DlqSource(StrEnum):
    """Where the dead letters are read from."""

    table = "table"
    topic = "topic"


@dataclass(frozen=True)
class DeadLetters:
    """Dead letters read from one source: the rows (newest last is not assumed) and what was scanned."""

    rows: list[dict[str, Any]]
    where: str
    note: str = ""


def reason_kind(reason: str) -> str:
    """The reason with its specifics masked: quoted values, timestamps, numbers and parser details."""
    kind = _TIMESTAMP.sub("<time>", reason)
    kind = _QUOTED.sub("'…'", kind)
    kind = _PAREN.sub(r"(\1)", kind)
    return _NUMBER.sub("N", kind)


def read_table(settings: Settings) -> DeadLetters:
    """Every row of the dead-letter Delta table (through deltalake: no Spark needed)."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    path = DEAD_LETTER.path(settings.delta_root_uri)
    try:
        table = DeltaTable(path)
    except TableNotFoundError as exc:
        raise FileNotFoundError(f"no dead-letter table at {path}: run `reelytics bronze` first, "
                                "or read the topic with `reelytics dlq topic`") from exc
    columns = ["reason", "field", *_SAMPLE_COLUMNS]
    return DeadLetters(table.to_pyarrow_table(columns=list(dict.fromkeys(columns))).to_pylist(),
                       f"{path} (version {table.version()})")


def read_topic(settings: Settings, *, scan: int) -> DeadLetters:
    """The newest ``scan`` records of the dead-letter topic (spread over its partitions), parsed."""
    from kafka import KafkaConsumer, TopicPartition

    topic = settings.topics.dead_letter.name
    consumer = KafkaConsumer(**settings.kafka_consumer_config(consumer_timeout_ms=2000))
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not partitions:
            raise FileNotFoundError(f"no topic {topic} on {settings.kafka_bootstrap_servers}: `reelytics up` "
                                    "creates it")
        consumer.assign(partitions)
        begin, end = consumer.beginning_offsets(partitions), consumer.end_offsets(partitions)
        total = sum(end[tp] - begin[tp] for tp in partitions)
        per_partition = max(1, scan // len(partitions))
        remaining = {}
        for tp in partitions:
            start = max(begin[tp], end[tp] - per_partition)
            consumer.seek(tp, start)
            remaining[tp] = end[tp] - start
        rows: list[dict[str, Any]] = []
        while any(n > 0 for n in remaining.values()):
            batch = consumer.poll(timeout_ms=2000)
            if not batch:
                break
            for tp, records in batch.items():
                for record in records:
                    if record.offset >= end[tp]:
                        continue
                    remaining[tp] -= 1
                    rows.append(_topic_row(record.value, f"{tp.topic}/{tp.partition}/{record.offset}"))
    finally:
        consumer.close()
    note = f"the newest {len(rows):,} of {total:,} records" if len(rows) < total else ""
    return DeadLetters(rows, topic, note)


def _topic_row(value: bytes | None, coordinates: str) -> dict[str, Any]:
    try:
        letter = json.loads(value or b"")
    except ValueError:
        letter = None
    if not isinstance(letter, dict) or not isinstance(letter.get("reason"), str):
        text = (value or b"").decode("utf-8", errors="replace")
        return {"reason": "dead-letter record is not a valid dead-letter JSON object", "field": None,
                "received_at": None, "stage": "unknown", "source": coordinates, "event_id": None, "raw_payload": text}
    received = letter.get("received_at")
    try:
        letter["received_at"] = datetime.fromisoformat(received.replace("Z", "+00:00")) if received else None
    except (AttributeError, ValueError):
        letter["received_at"] = None
    return letter


def _truncate(text: Any, width: int) -> str:
    value = "" if text is None else str(text)
    return value if len(value) <= width else value[: width - 1] + "…"


def dlq(
    source: DlqSource = typer.Argument(DlqSource.table, help="table: the dead-letter Delta table bronze writes; "
                                       "topic: the dead-letter Kafka topic (also what bronze has not landed yet)."),
    limit: int = typer.Option(10, "--limit", "-n", min=0, help="Newest dead letters to show."),
    scan: int = typer.Option(100_000, "--scan", min=1, help="With `topic`: read at most this many of the newest "
                             "records."),
    width: int = typer.Option(80, "--width", min=10, help="Characters of each raw payload to show."),
) -> None:
    """Show dead-letter counts by field and reason, and the newest refused payloads."""
    console = Console()
    settings = load_settings()
    try:
        letters = read_table(settings) if source is DlqSource.table else read_topic(settings, scan=scan)
    except FileNotFoundError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from exc
    except Exception as exc:  # an unreachable broker or store: say where we looked
        logger.debug("reading dead letters failed", exc_info=True)
        console.print(f"[red]error:[/] could not read the dead letters from {source.value}: "
                      f"{exc.__class__.__name__}: {exc}")
        raise typer.Exit(1) from exc
    rows = letters.rows
    console.print(f"{len(rows):,} dead letters in [cyan]{letters.where}[/]"
                  + (f" ({letters.note})" if letters.note else ""))
    if not rows:
        return

    counts = Counter((row.get("field") or "-", reason_kind(row.get("reason") or "")) for row in rows)
    by_reason = Table(title="by field and reason")
    by_reason.add_column("field")
    by_reason.add_column("reason")
    by_reason.add_column("count", justify="right")
    for (field, kind), count in counts.most_common():
        by_reason.add_row(field, kind, f"{count:,}")
    console.print(by_reason)

    if limit:
        newest = sorted(rows, key=lambda r: (r.get("received_at") is not None, r.get("received_at") or 0),
                        reverse=True)[:limit]
        samples = Table(title=f"newest {len(newest)}")
        for column in _SAMPLE_COLUMNS:
            samples.add_column(column, overflow="fold")
        for row in newest:
            at = row.get("received_at")
            samples.add_row(at.isoformat(timespec="seconds") if isinstance(at, datetime) else "-",
                            row.get("stage") or "-", _truncate(row.get("reason"), 100), row.get("source") or "-",
                            row.get("event_id") or "-", _truncate(row.get("raw_payload"), width))
        console.print(samples)
