"""Data quality of silver and gold: great-expectations suites built from ``warehouse_models``, one module per table.

``suite`` holds the shared parts (expectations derived from the table and envelope definitions, the runner and
the short "why" of a result), ``read`` the Delta reads; the Dagster asset checks in
``orchestration.defs.warehouse.checks`` call the ``check_*`` functions of the table modules.
"""
