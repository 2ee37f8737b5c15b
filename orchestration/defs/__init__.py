"""One folder per domain (ingest, warehouse, models, publish), each with assets, schedules, sensors, checks."""
