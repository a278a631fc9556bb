"""The master key, in one place: ``key`` (what it is, where it lives, loading and creating it) and
``rotation`` (rotating it, recovering an interrupted rotation, the ring of old keys). Only ``key`` is
re-exported here, so importing the key does not import the database layer."""

from __future__ import annotations

from company_agents.master_key.key import (
    MASTER_KEY_BYTES,
    MasterKey,
    check_key_file_mode,
    load_master_key,
    master_key_location,
    master_key_status,
)

__all__ = [
    "MASTER_KEY_BYTES",
    "MasterKey",
    "check_key_file_mode",
    "load_master_key",
    "master_key_location",
    "master_key_status",
]
