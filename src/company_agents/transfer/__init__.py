"""Moving all data between databases: ``db export`` and ``db import`` (docs/design.md §7)."""

from __future__ import annotations

from company_agents.transfer.archive import ArchiveReader, Manifest, TableEntry
from company_agents.transfer.export import export_database, snapshot, write_export
from company_agents.transfer.import_ import ImportResult, import_archive
from company_agents.transfer.progress import ProgressFn

__all__ = [
    "ArchiveReader",
    "ImportResult",
    "Manifest",
    "ProgressFn",
    "TableEntry",
    "export_database",
    "import_archive",
    "snapshot",
    "write_export",
]
