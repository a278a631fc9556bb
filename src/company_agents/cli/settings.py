"""The one settings object of a CLI process, built on first use from the environment and options."""

from __future__ import annotations

import typer

from company_agents.settings import Settings, load_settings


def settings_from(ctx: typer.Context) -> Settings:
    obj = ctx.find_root().obj
    if obj.get("settings") is None:
        obj["settings"] = load_settings(**obj.get("overrides", {}))
    settings: Settings = obj["settings"]
    return settings
