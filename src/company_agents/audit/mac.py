"""Per-event MACs: every audit event is authenticated at insert, before any seal covers it.

Events are inserted in many places in SQL (the task path's CTEs, the claim function, ``audit.record``),
so the MAC is computed inside the database, by the ``audit_events_mac`` trigger (migration 0008): an
HMAC-SHA256 over the event's canonical encoding (the one ``audit_seal`` digests), keyed with a subkey
HKDF-derived from the master key (``crypto.AUDIT_MAC_PURPOSE``). No chain: inserts stay independent,
so the task hot path stays parallel; order, deletion and insertion are still proven by the seals.

The process hands that subkey to each of its own database sessions as the custom setting
``company_agents.audit_mac_key``, through the libpq ``options`` startup parameter. Startup options
are not statements: no ``log_statement`` line, no parameter in the server log, nothing in
``pg_stat_activity``, no error message that quotes them, and no round trip. The value is
``<key id>:<hex of (K xor ipad) || (K xor opad)>``, the two HMAC pads precomputed (HMAC-SHA256 from
the built-in ``sha256()``, so no extension is needed on either backend). A session without it inserts
events with a NULL MAC, which ``audit verify`` counts as unproven until a seal covers them.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from psycopg.conninfo import conninfo_to_dict

from company_agents import crypto
from company_agents.master_key import MasterKey

SETTING = "company_agents.audit_mac_key"
_BLOCK = 64  # SHA-256's block size


def mac_key(master_key: MasterKey) -> bytes:
    return crypto.derive_key(master_key, crypto.AUDIT_MAC_PURPOSE)


def session_value(master_key: MasterKey) -> str:
    """The setting's value: the key id and the two precomputed HMAC pads (secret: never log it)."""
    key = mac_key(master_key).ljust(_BLOCK, b"\x00")
    inner = bytes(b ^ 0x36 for b in key)
    outer = bytes(b ^ 0x5C for b in key)
    return f"{master_key.key_id}:{(inner + outer).hex()}"


def session_options(master_key: MasterKey, url: str | None = None) -> str:
    """libpq ``options`` for a session that MACs the events it inserts.

    Keeps what the URL's ``options`` (or else ``$PGOPTIONS``, which an explicit value would hide) asks for.
    """
    existing: str | None = None
    if url:
        value = conninfo_to_dict(url.replace("postgresql+psycopg://", "postgresql://", 1)).get("options")
        existing = None if value is None else str(value)
    if existing is None:
        existing = os.environ.get("PGOPTIONS")
    ours = f"-c {SETTING}={session_value(master_key)}"
    return f"{existing} {ours}" if existing else ours


def event_mac(master_key: MasterKey, canonical: bytes) -> bytes:
    """The trigger's MAC over an event's canonical encoding (``audit_seal.EVENT_CANONICAL_SQL``)."""
    return hmac.new(mac_key(master_key), canonical, hashlib.sha256).digest()


def check_event_mac(master_key: MasterKey, canonical: bytes, mac: bytes) -> bool:
    return hmac.compare_digest(event_mac(master_key, canonical), mac)
