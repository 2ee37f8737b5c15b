"""The one definition of each thing: event envelope, topics, Delta tables, Redis keys and settings."""

from warehouse_models.events import EventType, TopicKind, Validation, validate_event
from warehouse_models.settings import Settings, load_settings

__all__ = ["EventType", "Settings", "TopicKind", "Validation", "load_settings", "validate_event"]
