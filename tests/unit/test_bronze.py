"""Bronze transformations on small batch DataFrames shaped like Spark's Kafka source (local Spark, no Kafka).

Contract: every record is kept with its Kafka coordinates; ``parse_error`` is null for a valid event and is
otherwise the shared validator's reason, naming the field; dead-letter records become dead-letter columns,
even when they are unreadable; the output has the table's declared columns, in order.
"""

from __future__ import annotations

from warehouse_models.tables import BRONZE_PLAYBACK


def test_bronze_tables_declare_the_envelope_nullable():
    nullable = {c.name: c.nullable for c in BRONZE_PLAYBACK.columns}
    assert nullable["event_id"] and nullable["event_type"] and nullable["parse_error"]
    assert not nullable["kafka_offset"] and not nullable["raw_value"]
