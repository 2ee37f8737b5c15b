"""The warehouse's time partitions: event hours (bronze, silver, fact) and event dates (dims, marts), in UTC."""

from __future__ import annotations

from datetime import datetime, timezone

from dagster import DailyPartitionsDefinition, HourlyPartitionsDefinition

START_DATE = "2026-01-01"
"""First partition: fixed, so the partition set never depends on the clock at import time."""

hourly_partitions = HourlyPartitionsDefinition(start_date=f"{START_DATE}-00:00", timezone="UTC", end_offset=0)
"""One partition per closed UTC event hour (``end_offset=0``): the hourly schedule builds the hour that just closed,
and the hour in progress is built once it closes rather than half-way."""

daily_partitions = DailyPartitionsDefinition(start_date=START_DATE, timezone="UTC", end_offset=0)
"""One partition per closed UTC event date (``end_offset=0``): the nightly schedule builds yesterday."""

HOUR_KEY_FORMAT = "%Y-%m-%d-%H:%M"
"""How an hourly partition key spells its hour (Dagster's default for hourly partitions)."""


def hour_key(hour: datetime) -> str:
    """The hourly partition key of an aware time's UTC hour."""
    return hour.astimezone(timezone.utc).strftime(HOUR_KEY_FORMAT)
