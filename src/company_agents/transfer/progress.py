"""How transfer code reports progress without knowing who draws it (the CLI draws Rich bars)."""

from __future__ import annotations

from collections.abc import Callable

# (phase, table, rows done, rows expected or None). Phases: export, check, load, verify.
ProgressFn = Callable[[str, str, int, int | None], None]
