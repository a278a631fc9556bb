"""What a scope spent over some span: the sums every roll-up is made of, from counters or the ledger.

The ledger expressions here are the definition of a counter row: ``cost rebuild`` recomputes the
counters with them, and the roll-ups read the sub-day edges of a window with them, so both agree with
what ``ledger.record`` writes. An adjustment counts in the bucket of the entry it corrects
(``details.adjustsKind``) and, when it prices an unpriced entry, takes that entry off the unpriced count
(``details.reprices``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from decimal import Decimal
from typing import Any, LiteralString

# Expressions over a cost entry ``e``, in the column order of ``cost_counters`` (COUNTER_COLUMNS).
BUCKET: LiteralString = "CASE WHEN e.kind = 'adjustment' THEN e.details->>'adjustsKind' ELSE e.kind END"
LEDGER_SUMS: LiteralString = f"""
    coalesce(sum(e.effective_usd), 0) AS usd,
    coalesce(sum(e.billed_usd), 0) AS billed_usd,
    coalesce(sum(e.input_tokens), 0)::bigint AS input_tokens,
    coalesce(sum(e.output_tokens), 0)::bigint AS output_tokens,
    coalesce(sum(e.cache_read_tokens), 0)::bigint AS cache_read_tokens,
    coalesce(sum(coalesce(e.cache_write_5m_tokens, 0) + coalesce(e.cache_write_1h_tokens, 0)), 0)::bigint
        AS cache_write_tokens,
    coalesce(sum(e.effective_usd) FILTER (WHERE {BUCKET} = 'llm'), 0) AS llm_usd,
    coalesce(sum(e.effective_usd) FILTER (WHERE {BUCKET} = 'tool'), 0) AS tool_usd,
    coalesce(sum(e.effective_usd) FILTER (WHERE {BUCKET} = 'runtime'), 0) AS runtime_usd,
    count(*) AS entries,
    (count(*) FILTER (WHERE e.unpriced) - count(*) FILTER (WHERE (e.details->>'reprices')::boolean))::bigint
        AS unpriced_entries
"""

COUNTER_FIELDS: LiteralString = """
    usd, billed_usd, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens,
    llm_usd, tool_usd, runtime_usd, entries, unpriced_entries
"""


@dataclass
class Totals:
    usd: Decimal = Decimal(0)
    billed_usd: Decimal = Decimal(0)
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    llm_usd: Decimal = Decimal(0)
    tool_usd: Decimal = Decimal(0)
    runtime_usd: Decimal = Decimal(0)
    entries: int = 0
    unpriced_entries: int = 0

    def add(self, row: dict[str, Any], sign: int = 1) -> None:
        values = self.__dict__
        for name in TOTAL_FIELDS:
            values[name] += sign * row[name]

    def __iadd__(self, other: Totals) -> Totals:
        self.add(other.__dict__)
        return self

    def tokens(self) -> dict[str, int]:
        return {
            "input": self.input_tokens,
            "output": self.output_tokens,
            "cacheRead": self.cache_read_tokens,
            "cacheWrite": self.cache_write_tokens,
        }

    def as_row(self) -> dict[str, Any]:
        return dict(self.__dict__)


TOTAL_FIELDS = tuple(f.name for f in fields(Totals))
