"""Creating the batch layer's Delta tables from their specs (:mod:`warehouse_models.tables`), in one place.

Every table is made with its declared columns, types, nullability, partitioning and properties before the first
write, so every reader (Spark, deltalake, DuckDB) sees the declared schema from the first moment. A table made by
an older release is brought up to date: columns declared since are added, and the statistics columns are set.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from warehouse_models.tables import TableSpec, table_properties

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

logger = logging.getLogger(__name__)


def create_table(spark: SparkSession, spec: TableSpec, path: str) -> str:
    """Create the table at ``path`` from its spec if it is missing, then bring an older one up to date; return
    ``path``."""
    from delta.tables import DeltaTable

    builder = DeltaTable.createIfNotExists(spark).location(path).comment(spec.doc)
    for column in spec.columns:
        builder = builder.addColumn(column.name, column.type, nullable=column.nullable, comment=column.doc)
    if spec.partition_by:
        builder = builder.partitionedBy(*spec.partition_by)
    for key, value in table_properties(spec).items():
        builder = builder.property(key, value)
    builder.execute()
    bring_up_to_date(spark, path, spec)
    return path


def bring_up_to_date(spark: SparkSession, path: str, spec: TableSpec) -> list[str]:
    """Add the spec's columns an older table lacks (nullable, at the end), so a table made before a column was
    declared (an envelope field added later) takes the new rows, and set the properties it lacks or holds
    otherwise; returns the added columns' names. The table is read from the Delta log with deltalake, without a
    Spark job."""
    from deltalake import DeltaTable as LogTable

    from batch_layer.analyst import deltalake_uri

    table = LogTable(deltalake_uri(path))
    existing = {field.name for field in table.schema().fields}
    missing = [column for column in spec.columns if column.name not in existing]
    if missing:
        if any(not column.nullable for column in missing):
            raise RuntimeError(f"{spec.name} at {path} lacks required columns "
                               f"{[c.name for c in missing if not c.nullable]}: rebuild the table")
        declared = ", ".join(f"`{c.name}` {c.type} COMMENT '{c.doc.replace(chr(39), chr(39) * 2)}'" for c in missing)
        spark.sql(f"ALTER TABLE delta.`{path}` ADD COLUMNS ({declared})")
        logger.warning("%s: added the columns %s (declared after the table was made)", spec.name,
                       [c.name for c in missing])
    configuration = table.metadata().configuration
    stale = {key: value for key, value in table_properties(spec).items() if configuration.get(key) != value}
    if stale:
        assignments = ", ".join(f"'{key}' = '{value}'" for key, value in sorted(stale.items()))
        spark.sql(f"ALTER TABLE delta.`{path}` SET TBLPROPERTIES ({assignments})")
        logger.info("%s: set %s (files written from now on follow them)", spec.name, stale)
    return [c.name for c in missing]
