"""CLI output helpers: camelCase JSON for machines, Rich tables for people.

camelCase is for the keys of our own projections, never for data: a task's ``output``, an audit
``payload``, an integration's ``config``, a checkpoint, an agent's ``adapter_config`` come out exactly as
stored (``files_written`` stays ``files_written``, ``ANTHROPIC_API_KEY`` stays ``ANTHROPIC_API_KEY``).
So ``print_json`` renames the keys of the object it is given (or of each object in the list it is
given), and the values are left alone; a nested projection of ours is named in ``nested=`` (or built
with ``camel_keys``), never found by recursion.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from rich.console import Console
from rich.table import Table


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def camel_keys(value: Any, nested: Iterable[str] = ()) -> Any:
    """One projection (or a list of them) with camelCase keys; values are left as they are.

    ``nested`` names the keys whose values are projections of ours too (an object or a list of
    objects), renamed one level down in the same way.
    """
    inner = frozenset(nested)
    if isinstance(value, list | tuple):
        return [camel_keys(v, inner) for v in value]
    if not isinstance(value, dict):
        return value
    return {camel(str(k)): camel_keys(v) if k in inner else v for k, v in value.items()}


def json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def print_json(value: Any, *, nested: Iterable[str] = ()) -> None:
    """Print a projection (or a list of them) as JSON, its keys in camelCase (see ``camel_keys``)."""
    print(json.dumps(camel_keys(value, nested), default=json_default, indent=2, sort_keys=False))


def _cell(value: Any) -> str:
    """A table cell: structures as compact JSON, never a Python repr."""
    if value is None:
        return ""
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, default=json_default, ensure_ascii=False, separators=(",", ":"))
    return str(value)


def print_table(title: str | None, columns: list[str], rows: list[list[Any]]) -> None:
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(_cell(v) for v in row))
    Console().print(table)
