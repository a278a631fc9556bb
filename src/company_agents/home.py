"""The instance home: its layout, created on first start (the master key is ``master_key``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from company_agents.settings import Settings

DEFAULT_CONFIG: dict[str, object] = {
    "defaultAdapter": None,
    "fiscalPeriod": "monthly",
    "budgetSplit": {},
    "adapters": {},
}


def home_directories(settings: Settings) -> list[Path]:
    """Every directory the home must hold, in creation order."""
    return [
        settings.home,
        settings.db_dir,
        settings.storage_dir,
        settings.backups_dir,
        settings.secrets_dir,
        settings.runs_dir,
        settings.logs_dir,
    ]


def ensure_home(settings: Settings) -> None:
    """Create the home layout (idempotent). Private directories are 0700."""
    for path in home_directories(settings):
        path.mkdir(parents=True, exist_ok=True)
    # The home holds the data, the keys and the run workspaces: nobody else needs to list it.
    # The embedded server runs as another OS user when we are root, so it gets traverse (x) only.
    settings.home.chmod(0o711 if os.geteuid() == 0 else 0o700)
    for path in home_directories(settings)[2:]:
        path.chmod(0o700)
    for path in (settings.home / "data",):
        path.chmod(0o700)
    if not settings.config_path.exists():
        settings.config_path.write_text(json.dumps(DEFAULT_CONFIG, indent=2) + "\n")
