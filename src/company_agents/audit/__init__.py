"""The audit trail: writing events (``trail``), sealing them (``seal``), verifying (``verify``) and
reading them back (``query``). ``audit.record`` is what every state change calls."""

from __future__ import annotations

from company_agents.audit.trail import LOCAL_USER, SYSTEM_ACTOR, record

__all__ = ["LOCAL_USER", "SYSTEM_ACTOR", "record"]
