"""The one settings object of a CLI process, built on first use from the environment and options."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from company_agents.settings import Settings


def settings_from(ctx: typer.Context) -> Settings:
    from company_agents.settings import load_settings

    obj = ctx.find_root().obj
    if obj.get("settings") is None:
        obj["settings"] = load_settings(**obj.get("overrides", {}))
    settings: Settings = obj["settings"]
    return settings
