"""Bearer tokens the orchestrator hands out: made here, stored only as their SHA-256.

Two kinds, told apart by prefix: lease tokens (``lt_``, one per run, speak for that attempt only) and
agent identity tokens (``at_``, one per agent, act as that agent). Neither is ever stored in the clear,
so a database dump reveals no usable token.
"""

from __future__ import annotations

import hashlib
import secrets

LEASE_TOKEN_PREFIX = "lt_"
AGENT_TOKEN_PREFIX = "at_"


def new_token(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """The stored form of a token (hex SHA-256): tokens carry 256 random bits, so no salt or KDF."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_lease_token() -> str:
    return new_token(LEASE_TOKEN_PREFIX)


def new_agent_token() -> tuple[str, str]:
    """A fresh identity token and its hash."""
    token = new_token(AGENT_TOKEN_PREFIX)
    return token, hash_token(token)
