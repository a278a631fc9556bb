"""The export forms of cost entries, shared by ``cost export`` and ``GET …/costs/export``: CSV with a
header (snake_case columns, one row an entry) and JSONL (one public entry a line)."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

FORMATS = ("csv", "jsonl")

EXPORT_COLUMNS = (
    "id",
    "created_at",
    "kind",
    "model",
    "provider",
    "billing",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_5m_tokens",
    "cache_write_1h_tokens",
    "reasoning_tokens",
    "billed_usd",
    "imputed_usd",
    "effective_usd",
    "price_source",
    "unpriced",
    "team_id",
    "agent_id",
    "task_id",
    "run_id",
    "adjusts_entry_id",
    "idempotency_key",
)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, UUID | Decimal):
        return str(value)
    return str(value)


def csv_line(values: list[Any] | tuple[Any, ...]) -> str:
    """One CSV record (with its line end), quoted as ``csv`` does."""
    out = io.StringIO()
    csv.writer(out).writerow([_cell(v) for v in values])
    return out.getvalue()


def csv_header() -> str:
    return csv_line(EXPORT_COLUMNS)


def csv_row(public: dict[str, Any]) -> str:
    """An entry (``report.entry_public``) as a CSV record of ``EXPORT_COLUMNS``."""
    return csv_line([public[c] for c in EXPORT_COLUMNS])
