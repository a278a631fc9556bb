"""The dashboard password of the private-network mode (``up --dashboard-host``): set with
``company-agents dashboard password``, kept in the home only as a scrypt hash (``hashlib.scrypt``).

Loopback needs none (the access link lets the local browser in); a dashboard another machine can reach
refuses to start without one (``require_password``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from typing import TYPE_CHECKING

from company_agents.errors import ConfigError, InvalidInput

if TYPE_CHECKING:
    from company_agents.settings import Settings

# scrypt's cost (RFC 7914 §2, the interactive-login figures): about 16 MiB and tens of ms a check.
N, R, P = 2**14, 8, 1
SALT_BYTES = 16
KEY_BYTES = 32
MIN_LENGTH = 12
SCHEME = "scrypt"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _derive(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=r, p=p, maxmem=256 * n * r + 1024 * 1024, dklen=KEY_BYTES
    )


def hash_password(password: str) -> str:
    """``scrypt$n$r$p$salt$key``: the parameters ride along, so a later cost still checks old hashes."""
    if len(password) < MIN_LENGTH:
        raise InvalidInput(f"a dashboard password has at least {MIN_LENGTH} characters", field="password")
    salt = secrets.token_bytes(SALT_BYTES)
    return f"{SCHEME}${N}${R}${P}${_b64(salt)}${_b64(_derive(password, salt, N, R, P))}"


def check_password(password: str, stored: str) -> bool:
    """Whether ``password`` is the one ``stored`` was made from (constant-time compare)."""
    try:
        scheme, n, r, p, salt, key = stored.strip().split("$")
        if scheme != SCHEME:
            return False
        derived = _derive(password, _unb64(salt), int(n), int(r), int(p))
    except (ValueError, MemoryError):
        return False
    return hmac.compare_digest(derived, _unb64(key))


def write_password(settings: Settings, password: str) -> None:
    """Store the hash of ``password`` (0600, replaced atomically); a running dashboard reads it at start."""
    path = settings.dashboard_password_path
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    staged = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(hash_password(password) + "\n")
    os.replace(staged, path)


def read_password_hash(settings: Settings) -> str | None:
    path = settings.dashboard_password_path
    if not path.is_file():
        return None
    text = path.read_text(encoding="utf-8").strip()
    return text or None


def require_password(settings: Settings) -> str:
    """The stored hash; a ``ConfigError`` that says how to set one when there is none."""
    stored = read_password_hash(settings)
    if stored is None:
        raise ConfigError(
            f"the dashboard on {settings.dashboard_host} can be reached from other machines, so it needs "
            "a password: set one with `company-agents dashboard password`, or serve it on loopback",
            field="dashboard_host",
        )
    return stored
