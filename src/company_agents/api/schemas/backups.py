"""Backups as the API and ``backup list --json`` show them, and a verification's result."""

from __future__ import annotations

from company_agents.api.schemas.common import Public, UtcTime

# As backup.bundle.NAME_RE: <UTC time>[_NN].tar.gz, the only names the backups directory holds.
BACKUP_NAME_PATTERN = r"^[0-9]{8}T[0-9]{6}Z(_[0-9]{2,6})?\.tar\.gz$"


class Backup(Public):
    name: str
    path: str
    # The host whose disk holds it; ``here``: this home's backups directory.
    host: str
    here: bool
    # Whether the database records it (a file copied in by hand is listed, unrecorded).
    recorded: bool
    created_at: UtcTime
    bytes: int
    includes_secrets: bool
    scheduled: bool
    schema_revision: str
    contents: list[str]


class BackupVerification(Public):
    """``ok``: every member's checksum and every table's rows match; else ``problem`` says what not."""

    name: str
    ok: bool
    problem: str | None
    contents: list[str]
