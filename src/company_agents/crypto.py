"""Keys derived from the master key, and the primitives built on them (AES-256-GCM, HMAC-SHA256).

The raw master key is never used directly: each use gets its own key, derived with HKDF-SHA256 and a
purpose label, so a key leaked from one use (say, the audit seal key) reveals nothing about another.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from uuid import UUID

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from company_agents.errors import SecretDecryptError
from company_agents.master_key import MasterKey

# Purpose labels: changing one changes every key derived for that purpose (a format break).
SECRET_STORE_PURPOSE = "secret-store aes-256-gcm v1"
AUDIT_SEAL_PURPOSE = "audit-seal hmac-sha256 v1"
# The per-event MAC key is handed to the database session (see ``audit.mac``): its own label, so that
# key, if it leaks from a session, reveals neither the master key nor the seal key.
AUDIT_MAC_PURPOSE = "audit-event-mac hmac-sha256 v1"

NONCE_BYTES = 12


def derive_key(master_key: MasterKey, purpose: str) -> bytes:
    """A 32-byte key for ``purpose``, derived from the master key with HKDF-SHA256."""
    hkdf = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=b"company-agents",
        info=b"company-agents/" + purpose.encode(),
    )
    return hkdf.derive(master_key.key)


def secret_aad(company_id: UUID, name: str) -> bytes:
    """Associated data binding a ciphertext to its company and name: a copied row fails to decrypt."""
    return b"company-agents secret v1\x00" + company_id.bytes + b"\x00" + name.encode()


def encrypt(master_key: MasterKey, plaintext: bytes, aad: bytes) -> tuple[bytes, bytes]:
    """AES-256-GCM with a fresh random 12-byte nonce; returns ``(nonce, ciphertext)``."""
    nonce = secrets.token_bytes(NONCE_BYTES)
    ciphertext = AESGCM(derive_key(master_key, SECRET_STORE_PURPOSE)).encrypt(nonce, plaintext, aad)
    return nonce, ciphertext


def decrypt(master_key: MasterKey, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
    """Decrypt and authenticate; raises ``SecretDecryptError`` (which never carries the data)."""
    try:
        return AESGCM(derive_key(master_key, SECRET_STORE_PURPOSE)).decrypt(nonce, ciphertext, aad)
    except InvalidTag:
        raise SecretDecryptError() from None


def seal_signature(master_key: MasterKey, message: bytes) -> str:
    """HMAC-SHA256 (hex) of ``message`` under the audit seal key."""
    return hmac.new(derive_key(master_key, AUDIT_SEAL_PURPOSE), message, hashlib.sha256).hexdigest()


def check_seal_signature(master_key: MasterKey, message: bytes, signature: str) -> bool:
    return hmac.compare_digest(seal_signature(master_key, message), signature)
