"""Small Arrow table helpers shared by stages."""

from __future__ import annotations

from collections.abc import Iterable

import pyarrow as pa


def with_columns(table: pa.Table, columns: Iterable[tuple[str, pa.Array]]) -> pa.Table:
    """``table`` with each named column replaced in place, or appended when it is new."""
    for name, values in columns:
        names = table.column_names
        table = (
            table.set_column(names.index(name), name, values)
            if name in names
            else table.append_column(name, values)
        )
    return table


__all__ = ["with_columns"]
