"""Which environment variables may never reach an agent, whoever asks for them.

An agent is untrusted code with a shell (docs/design.md §9): it must not hold a database credential,
the master key, or the orchestrator's own settings (which name the home, where the keys are). These
names are refused in an adapter's ``passEnv`` and ``env`` (at config load), in an agent's secret
environment (at hire and at run time), and as a last guard in the environment an agent is started with.
"""

from __future__ import annotations

from company_agents.settings import Settings

# libpq reads PG* (PGPASSWORD, PGPASSFILE, PGHOST, …): any of them points at, or opens, a database.
_PREFIXES = (
    ("MASTER_KEY_", "a master-key setting"),
    ("COMPANY_AGENTS_", "an orchestrator setting"),
    ("PG", "a libpq (database connection) variable"),
)
_NAMES = {"DATABASE_URL": "the database URL and its credentials"}


def reserved_names(settings: Settings) -> frozenset[str]:
    """Names reserved by this instance's settings: the variable an ``env://`` master key is read from."""
    source = settings.master_key_source or ""
    if source.startswith("env://") and source.removeprefix("env://"):
        return frozenset({source.removeprefix("env://")})
    return frozenset()


def reserved_reason(name: str, extra: frozenset[str] = frozenset()) -> str | None:
    """Why ``name`` may never be passed to an agent, or ``None`` when it may."""
    if name in extra:
        return "it holds the master key (MASTER_KEY_SOURCE=env://…)"
    if name in _NAMES:
        return _NAMES[name]
    for prefix, what in _PREFIXES:
        if name.startswith(prefix):
            return f"{what} ({prefix}*)"
    return None


def refuse_reserved(names: list[str] | set[str], extra: frozenset[str] = frozenset()) -> list[str]:
    """``NAME (reason)`` for each reserved name among ``names``, sorted; empty when all may pass."""
    return [f"{n} ({reason})" for n in sorted(names) if (reason := reserved_reason(n, extra))]
