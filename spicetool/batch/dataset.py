"""The batch's Parquet: one part file per capture in OUT/parts/ (written as each capture finishes, so an
interrupted batch leaves a dataset pyarrow.dataset, DuckDB or Spark read), and OUT/channels.parquet, all
parts in one file (by capture hash, each capture's rows in its figures' order), written at the end of every run."""

from __future__ import annotations

import os
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from spicetool.batch.rows import COLUMNS

_TYPES = {"string": pa.string(), "int64": pa.int64(), "float64": pa.float64(), "bool": pa.bool_(),
          "list<string>": pa.list_(pa.string()), "map<string,int64>": pa.map_(pa.string(), pa.int64())}
SCHEMA = pa.schema([pa.field(name, _TYPES[kind]) for name, kind in COLUMNS.items()])
PARTS, COMBINED = "parts", "channels.parquet"


def _atomic(table: pa.Table, path: str) -> None:
    # a dot first: pyarrow.dataset (and Spark) skip it, should a crash leave it
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.{os.getpid()}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def write_part(out: str, sha256: str, rows: list[dict[str, Any]]) -> None:
    """The rows of one capture as OUT/parts/SHA256.parquet (none: no file)."""
    folder = os.path.join(out, PARTS)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{sha256}.parquet")
    if not rows:
        if os.path.exists(path):
            os.unlink(path)
        return
    _atomic(pa.Table.from_pylist(rows, schema=SCHEMA), path)


def read_parts(out: str, done: set[str]) -> pa.Table:
    """The parts of the captures done (a part without its marker is not done), in one table."""
    folder = os.path.join(out, PARTS)
    tables = [pq.read_table(os.path.join(folder, f"{sha}.parquet"), schema=SCHEMA) for sha in sorted(done)
              if os.path.exists(os.path.join(folder, f"{sha}.parquet"))]
    if not tables:
        return SCHEMA.empty_table()
    return pa.concat_tables(tables)


def combine(out: str, done: set[str]) -> int:
    """OUT/channels.parquet from the parts of the captures done; its rows."""
    table = read_parts(out, done)  # by hash, each capture's rows in its figures' order
    _atomic(table, os.path.join(out, COMBINED))
    return table.num_rows
