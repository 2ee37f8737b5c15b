"""A small neutral type language for columns, rendered to Spark DDL and to Arrow.

Every schema in `warehouse_models` is written once as a list of :class:`Column`; Spark, Delta, DuckDB
(through Arrow) and the validators read that list, so a column cannot mean different things in two places.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pyarrow as pa

ColumnType = Literal[
    "string", "int", "long", "double", "boolean", "timestamp", "date", "array<string>", "map<string,string>", "binary"
]

_SPARK: dict[str, str] = {
    "string": "STRING",
    "int": "INT",
    "long": "BIGINT",
    "double": "DOUBLE",
    "boolean": "BOOLEAN",
    "timestamp": "TIMESTAMP",
    "date": "DATE",
    "array<string>": "ARRAY<STRING>",
    "map<string,string>": "MAP<STRING, STRING>",
    "binary": "BINARY",
}

_ARROW: dict[str, pa.DataType] = {
    "string": pa.string(),
    "int": pa.int32(),
    "long": pa.int64(),
    "double": pa.float64(),
    "boolean": pa.bool_(),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "date": pa.date32(),
    "array<string>": pa.list_(pa.string()),
    "map<string,string>": pa.map_(pa.string(), pa.string()),
    "binary": pa.binary(),
}


@dataclass(frozen=True)
class Column:
    """One column of a table or one field of a message."""

    name: str
    type: ColumnType
    doc: str
    nullable: bool = True

    def spark_ddl(self) -> str:
        return f"`{self.name}` {_SPARK[self.type]}{'' if self.nullable else ' NOT NULL'}"

    def arrow_field(self) -> pa.Field:
        return pa.field(self.name, _ARROW[self.type], nullable=self.nullable)


def spark_ddl(columns: tuple[Column, ...] | list[Column]) -> str:
    """A Spark DDL schema string (`a STRING, b BIGINT`), accepted by `DataFrameReader.schema`."""
    return ", ".join(c.spark_ddl() for c in columns)


def arrow_schema(columns: tuple[Column, ...] | list[Column]) -> pa.Schema:
    return pa.schema([c.arrow_field() for c in columns])
