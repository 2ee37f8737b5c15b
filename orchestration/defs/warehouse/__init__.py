"""Warehouse assets: bronze, silver, the gold star schema and the marts, with partitions, schedules and sensors."""
