"""The Kafka topics: names, partitions, keys and retention, declared once.

Every topic is ``<prefix>.<kind>`` so that several deployments (or test runs) share a cluster without
colliding. Viewer events are keyed by account id so one account's events keep their order in one partition.
"""

from __future__ import annotations

from dataclasses import dataclass

from warehouse_models.events import TopicKind


@dataclass(frozen=True)
class TopicSpec:
    kind: TopicKind
    name: str
    partitions: int
    key: str
    """What the record key holds."""
    config: dict[str, str]
    """Topic-level configs set on creation."""
    doc: str


_WEEK_MS = str(7 * 24 * 3600 * 1000)


class Topics:
    """The topic layout for one prefix."""

    def __init__(self, prefix: str = "reelytics", *, partitions: int = 6) -> None:
        self.prefix = prefix
        self.playback = TopicSpec(
            TopicKind.PLAYBACK, f"{prefix}.playback", partitions, "account_id",
            {"retention.ms": _WEEK_MS, "compression.type": "producer"},
            "Playback lifecycle and 10-second heartbeats from players.",
        )
        self.interactions = TopicSpec(
            TopicKind.INTERACTIONS, f"{prefix}.interactions", max(1, partitions // 2), "account_id",
            {"retention.ms": _WEEK_MS, "compression.type": "producer"},
            "Rail impressions and button clicks from apps.",
        )
        self.catalog = TopicSpec(
            TopicKind.CATALOG, f"{prefix}.catalog", 1, "content_id or user_id",
            # Compacted: the newest record per title or user is kept forever; deletes are tombstones.
            {"cleanup.policy": "compact", "compression.type": "producer"},
            "Catalog titles, live channels and user profiles (upserts).",
        )
        self.derived = TopicSpec(
            TopicKind.DERIVED, f"{prefix}.derived", max(1, partitions // 2), "account_id",
            {"retention.ms": _WEEK_MS, "compression.type": "producer"},
            "Events the speed layer computes (view_end) and its alerts.",
        )
        self.dead_letter = TopicSpec(
            TopicKind.DEAD_LETTER, f"{prefix}.dead-letter", max(1, partitions // 2), "source",
            {"retention.ms": str(30 * 24 * 3600 * 1000), "compression.type": "producer"},
            "Everything refused, with the reason, the raw payload and where it came from.",
        )

    def all(self) -> list[TopicSpec]:
        return [self.playback, self.interactions, self.catalog, self.derived, self.dead_letter]

    def for_kind(self, kind: TopicKind) -> TopicSpec:
        return {spec.kind: spec for spec in self.all()}[kind]

    def names(self) -> list[str]:
        return [spec.name for spec in self.all()]
