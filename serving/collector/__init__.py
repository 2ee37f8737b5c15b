"""The collector: the HTTP front door where players and apps POST events on their way to Kafka.

:mod:`serving.collector.batch` holds the pure request handling (body to items, items to records),
:mod:`serving.collector.producer` the Kafka producer that waits for acknowledgements,
:mod:`serving.collector.app` the Starlette app that joins them, and :mod:`serving.collector.service` runs it
as a background process.
"""
