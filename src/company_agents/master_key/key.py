"""The master key: where it comes from (a 0600 file or an environment variable), loading it, creating it
on first start, and refusing an unsafe one. Rotation and the ring of old keys are in ``rotation``."""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from company_agents.errors import MasterKeyError
from company_agents.settings import Settings

MASTER_KEY_BYTES = 32


@dataclass(frozen=True)
class MasterKey:
    """The 32-byte key; ``key_id`` names it without revealing it (seals and ciphertexts record it)."""

    key: bytes
    source: str

    @property
    def key_id(self) -> str:
        return hashlib.sha256(b"company-agents key id\x00" + self.key).hexdigest()[:16]

    def __repr__(self) -> str:  # never print the key itself
        return f"MasterKey(key_id={self.key_id!r}, source={self.source!r})"


def master_key_location(settings: Settings) -> tuple[str, str]:
    """Return ``(kind, where)``: ``("file", path)`` or ``("env", VAR)``."""
    source = settings.master_key_source
    if source:
        if source.startswith("file://"):
            return "file", source.removeprefix("file://")
        if source.startswith("env://"):
            var = source.removeprefix("env://")
            if not var:
                raise MasterKeyError(
                    "MASTER_KEY_SOURCE=env:// needs a variable name, e.g. env://CA_MASTER_KEY"
                )
            return "env", var
        raise MasterKeyError(
            f"unsupported MASTER_KEY_SOURCE {source.split('://')[0]}://; use file:// or env://"
        )
    path = settings.master_key_path or settings.secrets_dir / "master.key"
    return "file", str(path)


def _decode_env_key(raw: str, var: str) -> bytes:
    text = raw.strip()
    try:
        if len(text) == 2 * MASTER_KEY_BYTES:
            return bytes.fromhex(text)
        key = base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error):
        raise MasterKeyError(f"${var} is not a hex or base64 encoding of a 32-byte key") from None
    if len(key) != MASTER_KEY_BYTES:
        raise MasterKeyError(f"${var} decodes to {len(key)} bytes; the master key must be 32 bytes")
    return key


def check_key_file_mode(path: Path) -> None:
    """Refuse a key file that group or others can read or write."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise MasterKeyError(
            f"master key {path} is accessible by group or others (mode {mode:04o}); fix: chmod 600 {path}"
        )


def master_key_status(settings: Settings) -> str:
    """``present``, ``missing`` (a file key that does not exist yet) — or raise when present but unsafe."""
    kind, where = master_key_location(settings)
    if kind == "env":
        if where not in os.environ:
            raise MasterKeyError(f"MASTER_KEY_SOURCE names ${where}, which is not set")
        return "present"
    path = Path(where)
    if not path.exists():
        return "missing"
    check_key_file_mode(path)
    return "present"


def load_master_key(settings: Settings, *, create: bool, database_has_secrets: bool = False) -> MasterKey:
    """Load the master key; create it (0600) on first start when allowed.

    Args:
        create: allowed to create a missing file key.
        database_has_secrets: the database already holds encrypted secrets, so a missing key is fatal.
    """
    kind, where = master_key_location(settings)
    if kind == "env":
        if where not in os.environ:
            raise MasterKeyError(f"MASTER_KEY_SOURCE names ${where}, which is not set")
        return MasterKey(_decode_env_key(os.environ[where], where), f"env://{where}")
    path = Path(where)
    if not path.exists():
        if database_has_secrets:
            raise MasterKeyError(
                f"master key {path} is missing but the database holds encrypted secrets; "
                "restore the key file (or set MASTER_KEY_PATH) before starting"
            )
        if not create:
            raise MasterKeyError(
                f"master key {path} does not exist; run `company-agents up` once to create it"
            )
        return MasterKey(_create_key_file(path), f"file://{path}")
    check_key_file_mode(path)
    key = path.read_bytes()
    if len(key) != MASTER_KEY_BYTES:
        raise MasterKeyError(f"master key {path} holds {len(key)} bytes; it must hold exactly 32")
    return MasterKey(key, f"file://{path}")


def _create_key_file(path: Path) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = secrets.token_bytes(MASTER_KEY_BYTES)
    # O_EXCL: two first starts racing must not each write a different key.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        check_key_file_mode(path)
        return path.read_bytes()
    with os.fdopen(fd, "wb") as fh:
        fh.write(key)
        fh.flush()
        os.fsync(fh.fileno())
    return key
