"""The master key of a route that encrypts or verifies: the one ``up`` bound to the app (``app.state``),
else the home's key file, exactly as the webhook routes take it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import Request

from company_agents.api.deps import get_settings

if TYPE_CHECKING:
    from company_agents.master_key import MasterKey


def master_key_of(request: Request) -> MasterKey:
    """The master key; ``MasterKeyError`` (an error answer, never a value) when there is none."""
    key: MasterKey | None = getattr(request.app.state, "master_key", None)
    if key is None:
        from company_agents.master_key import load_master_key

        key = load_master_key(get_settings(request), create=False)
    return key


def master_key_or_none(request: Request) -> MasterKey | None:
    """The master key, or None when there is none (verification can use older keys instead)."""
    from company_agents.errors import MasterKeyError

    try:
        return master_key_of(request)
    except MasterKeyError:
        return None
