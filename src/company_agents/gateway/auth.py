"""Which run a model call comes from: its gateway credential is the run's lease token.

Keyed setups carry it where the CLI puts its API key (``x-api-key``, ``Authorization: Bearer``,
``x-goog-api-key`` or ``?key=``); subscription setups, whose CLI sends its own login, carry it in the
base URL's path (``/t/<token>/<format>/…``) and their own credentials pass through untouched. The
token alone proves nothing: every call also needs the run's lease to be held under its fencing token
(``reserve.scopes``), so a reaped, ended or superseded run is refused.
"""

from __future__ import annotations

from collections.abc import Mapping

from company_agents.tokens import LEASE_TOKEN_PREFIX

KEY_HEADERS = ("x-api-key", "x-goog-api-key")


def split_path(path: str) -> tuple[str | None, str, str]:
    """(token from the path or None, format name, the rest of the path) of ``/[t/<token>/]<fmt>/…``."""
    parts = path.lstrip("/").split("/", 1)
    token = None
    if parts[0] == "t" and len(parts) == 2:
        token, _, path = parts[1].partition("/")
        parts = path.split("/", 1)
    fmt = parts[0]
    rest = "/" + parts[1] if len(parts) == 2 else "/"
    return token, fmt, rest


def token_from(headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
    for name in KEY_HEADERS:
        value = headers.get(name, "").strip()
        if value.startswith(LEASE_TOKEN_PREFIX):
            return value
    bearer = headers.get("authorization", "").removeprefix("Bearer ").strip()
    if bearer.startswith(LEASE_TOKEN_PREFIX):
        return bearer
    key = query.get("key", "")
    return key if key.startswith(LEASE_TOKEN_PREFIX) else None
