"""Who may connect to the embedded server: whoever holds its password, and nobody else.

The package initialises clusters with ``trust``, which makes every local process that can reach the
socket a superuser — an agent with a shell included (docs/database.md). Ours require SCRAM-SHA-256 on
every connection, on the socket and on TCP should the server ever listen there. The password is made on
first start, kept in ``<home>/secrets/db.pgpass`` (libpq's password-file format, mode 0600), and the
URL names that file (``passfile=``), never the password: nothing that prints, logs or passes a URL on
can leak it. The server only ever sees the SCRAM verifier, computed here.

A cluster made before this (``trust``) is upgraded in place on the next start: the password is set
over the still-trusting socket, ``pg_hba.conf`` is rewritten and the server reloaded.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import secrets
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import psycopg
from psycopg import sql

from company_agents.errors import EmbeddedDatabaseError

PASSWORD_FILE_NAME = "db.pgpass"
ROLE = "postgres"
SCRAM_ITERATIONS = 4096  # PostgreSQL's own default (scram_iterations)
# How long an upgrade waits for the server to apply the new pg_hba.conf (a reload is asynchronous).
RELOAD_WAIT_SECONDS = 10.0
HBA_CONF = """\
# Written by Company Agents (docs/database.md): every connection needs the password, whoever asks.
# TYPE  DATABASE  USER  ADDRESS       METHOD
local   all       all                 scram-sha-256
host    all       all   127.0.0.1/32  scram-sha-256
host    all       all   ::1/128       scram-sha-256
"""


def default_password_file(pgdata: Path) -> Path:
    """``<home>/secrets/db.pgpass`` for the data directory ``<home>/db``."""
    return pgdata.parent / "secrets" / PASSWORD_FILE_NAME


def read_password(path: Path) -> str | None:
    """The stored password, or ``None`` when there is no file yet; an unsafe file is refused."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        # libpq would silently ignore such a file and every connection would fail "no password supplied".
        raise EmbeddedDatabaseError(
            f"the embedded database's password file {path} is accessible by group or others "
            f"(mode {mode:04o}); fix: chmod 600 {path}"
        )
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            return line.rsplit(":", 1)[-1]
    raise EmbeddedDatabaseError(f"the embedded database's password file {path} holds no password")


def create_password(path: Path) -> str:
    """Make and store a new password (0600, written beside and renamed: never seen half-written)."""
    created = not path.parent.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    if created:
        path.parent.chmod(0o700)
    # URL-safe characters only: none of them needs escaping in a password file (``:`` and ``\`` do).
    password = secrets.token_urlsafe(32)
    fd, tmp = tempfile.mkstemp(prefix=f".{PASSWORD_FILE_NAME}.", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(f"# the embedded database's password (docs/database.md)\n*:*:*:{ROLE}:{password}\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return password


def ensure_password(path: Path) -> str:
    return read_password(path) or create_password(path)


def scram_verifier(password: str, *, salt: bytes | None = None, iterations: int = SCRAM_ITERATIONS) -> str:
    """The ``SCRAM-SHA-256$…`` verifier PostgreSQL stores (RFC 5802/7677), as libpq computes it.

    The password is ASCII (``create_password``), so SASLprep leaves it unchanged.
    """
    salt = salt if salt is not None else secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode()

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def hba_is_ours(pgdata: Path) -> bool:
    try:
        return (pgdata / "pg_hba.conf").read_text() == HBA_CONF
    except FileNotFoundError:
        return False


def write_hba(pgdata: Path) -> None:
    """Replace ``pg_hba.conf`` by ours, owned like the data directory (the server's user, as root)."""
    owner = pgdata.stat()
    fd, tmp = tempfile.mkstemp(prefix=".pg_hba.", dir=pgdata)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(HBA_CONF)
        if os.geteuid() == 0:
            os.chown(tmp, owner.st_uid, owner.st_gid)
        os.replace(tmp, pgdata / "pg_hba.conf")
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def password_file_for_initdb(password: str, owner: str | None) -> Iterator[Path]:
    """A private copy of the password for ``initdb --pwfile`` (the initdb user must read it: as root,
    the server's user, who cannot read ``<home>/secrets``). Never an argument: argv is public."""
    import pwd

    with tempfile.TemporaryDirectory(prefix="ca-initdb-") as tmp:
        path = Path(tmp) / "pw"
        path.write_text(password + "\n")
        path.chmod(0o600)
        if owner is not None:
            entry = pwd.getpwnam(owner)
            os.chown(tmp, entry.pw_uid, entry.pw_gid)
            os.chown(path, entry.pw_uid, entry.pw_gid)
        yield path


def url(*, socket_dir: Path, database: str, password_file: Path, port: int | None = None) -> str:
    """The libpq URL of the embedded server: its socket, and the file that holds the password."""
    query = f"host={quote(str(socket_dir), safe='/')}"
    if port is not None and port != 5432:
        query += f"&port={port}"
    query += f"&passfile={quote(str(password_file), safe='/')}"
    return f"postgresql://{ROLE}@/{quote(database, safe='')}?{query}"


def secure_running_server(
    pgdata: Path, *, socket_dir: Path, port: int | None, password_file: Path
) -> list[str]:
    """Make sure the running server asks everybody for the password; call under the start lock.

    Returns a description of what was changed, for the log (nothing, unless the cluster still trusted).
    """
    if hba_is_ours(pgdata):
        if read_password(password_file) is None:
            raise EmbeddedDatabaseError(
                f"the embedded database's password file {password_file} is missing, so nothing can "
                "connect to it; restore the file (docs/database.md says how to reset the password)"
            )
        return []
    password = ensure_password(password_file)
    params = {"host": str(socket_dir), "port": port or 5432, "user": ROLE, "dbname": "postgres"}
    try:
        # The cluster still trusts local connections: the one time that is used, to end it. Only the
        # verifier goes to the server, in a literal (utility statements take no parameters).
        with psycopg.connect(**params, autocommit=True) as conn:  # type: ignore[arg-type]
            conn.execute(
                sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                    sql.Identifier(ROLE), sql.Literal(scram_verifier(password))
                )
            )
            write_hba(pgdata)
            conn.execute("SELECT pg_reload_conf()")
    except psycopg.Error as exc:
        raise EmbeddedDatabaseError(
            f"could not set the embedded database's password: {type(exc).__name__}"
        ) from None
    _wait_for_password_required(params)
    return ["the embedded database trusted every local connection: it now requires its password"]


def _wait_for_password_required(params: dict[str, object]) -> None:
    """Until the server has applied the new rules: a wrong password is refused (trust accepts any)."""
    deadline = time.monotonic() + RELOAD_WAIT_SECONDS
    while True:
        try:
            psycopg.connect(**params, password="not-the-password", connect_timeout=5).close()  # type: ignore[arg-type]
        except psycopg.OperationalError:
            return
        if time.monotonic() >= deadline:
            raise EmbeddedDatabaseError("the embedded database did not apply its new pg_hba.conf")
        time.sleep(0.02)
