"""Ingest domain: the Kafka topics and (later) the bronze Delta tables."""
