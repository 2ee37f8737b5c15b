"""Gold: the star schema (fact_stream_events by event date, dim_content, dim_users as SCD type 2) in Delta."""

from __future__ import annotations

from batch_layer.gold.dim_content import dim_content
from batch_layer.gold.dim_users import dim_users, user_key
from batch_layer.gold.fact_stream_events import fact_stream_events
from batch_layer.gold.job import build_dims, build_fact, dates_of_hours

__all__ = ["build_dims", "build_fact", "dates_of_hours", "dim_content", "dim_users", "fact_stream_events", "user_key"]
