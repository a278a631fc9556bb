"""TLS to an external database: ``PGSSLMODE`` and friends pass through ``DATABASE_URL`` to libpq.

A throwaway server with ``ssl = on`` and a certificate from a CA made here, which accepts TLS
connections only (``hostssl``): every command that works below worked over TLS. Migrate, a task's
lifecycle (CLI and the orchestrator's async engine) and an export run with ``require`` and with
``verify-full`` against the CA; a certificate from another CA is refused with one clear line.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from company_agents import leases
from company_agents.db.database import open_database
from company_agents.settings import Settings
from tests.throwaway_pg import ThrowawayPostgres, TlsFiles, find_bin_dir

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(find_bin_dir() is None, reason="no PostgreSQL binaries under /usr/lib/postgresql"),
]

CLI = [sys.executable, "-m", "company_agents.cli.main"]
# libpq settings a user could have in the environment; each test sets its own.
LIBPQ_VARS = ("PGSSLMODE", "PGSSLROOTCERT", "PGSSLCERT", "PGSSLKEY", "PGHOST", "PGPORT", "PGUSER")


@dataclass
class Ca:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate
    path: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_pem(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    path.chmod(0o600)
    return path


def make_ca(directory: Path, name: str) -> Ca:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(_name(name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    path = _write_pem(directory / f"{name}.crt", cert.public_bytes(serialization.Encoding.PEM))
    return Ca(key=key, cert=cert, path=path)


def make_server_cert(directory: Path, ca: Ca) -> TlsFiles:
    """A server certificate for 127.0.0.1 and localhost (CN and SAN), signed by ``ca``."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca.key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return TlsFiles(
        cert=_write_pem(directory / "server.crt", cert.public_bytes(serialization.Encoding.PEM)),
        key=_write_pem(directory / "server.key", key_pem),
    )


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[Ca, Ca, TlsFiles]:
    directory = tmp_path_factory.mktemp("pki")
    ca, wrong = make_ca(directory, "test-ca"), make_ca(directory, "other-ca")
    return ca, wrong, make_server_cert(directory, ca)


@pytest.fixture(scope="module")
def tls_server(pki: tuple[Ca, Ca, TlsFiles]) -> Iterator[ThrowawayPostgres]:
    server = ThrowawayPostgres(tls=pki[2]).init()
    server.start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def clean_libpq_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in LIBPQ_VARS:
        monkeypatch.delenv(name, raising=False)


def _fresh_database(server: ThrowawayPostgres) -> str:
    name = f"ca_tls_{os.urandom(4).hex()}"
    with psycopg.connect(server.url(), autocommit=True, sslmode="require") as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return server.url(name)


def _cli(env: dict[str, str], *args: str) -> Any:
    out = subprocess.run([*CLI, *args, "--json"], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout) if out.stdout.strip() else None


async def _run_attempt(settings: Settings, agent_id: UUID) -> UUID:
    """Claim, start, renew, report progress and complete, through the orchestrator's async engine."""
    db = open_database(settings)
    try:
        async with db.autocommit() as conn:
            (claim,) = await leases.claim(conn, agent_id=agent_id, holder="tls-test", lease_seconds=60)
            ident, fence = claim.identity(), claim.fencing_token
            await leases.start(conn, ident, fencing_token=fence, workspace_path="/nonexistent")
            await leases.renew(conn, ident, fencing_token=fence, lease_seconds=60)
            await leases.report_progress(conn, ident, fencing_token=fence, checkpoint={"step": 1})
            await leases.complete(conn, ident, fencing_token=fence, output={"over": "tls"})
            ssl = (
                await conn.exec_driver_sql("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            ).one()
            assert ssl[0] is True
        await db.dispose()
    finally:
        db.close()
    return claim.task_id


@pytest.mark.parametrize("mode", ["require", "verify-full"])
def test_migrate_a_task_lifecycle_and_an_export_over_tls(
    mode: str,
    tls_server: ThrowawayPostgres,
    pki: tuple[Ca, Ca, TlsFiles],
    cli_env: dict[str, str],
    home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    clean_libpq_env: None,
) -> None:
    url = _fresh_database(tls_server)
    tls_env = {"PGSSLMODE": mode}
    if mode == "verify-full":
        tls_env["PGSSLROOTCERT"] = str(pki[0].path)
    env = {**{k: v for k, v in cli_env.items() if k not in LIBPQ_VARS}, "DATABASE_URL": url, **tls_env}

    _cli(env, "db", "migrate")
    assert _cli(env, "db", "status")["pending"] == []
    _cli(env, "new", "--name", "Acme", "--teams", "Eng")
    agent = _cli(
        env,
        "agent",
        "hire",
        "--company",
        "acme",
        "--name",
        "a",
        "--role",
        "r",
        "--team",
        "Eng",
        "--adapter",
        "scripted",
    )
    task = _cli(env, "task", "create", "--company", "acme", "--title", "t", "--body", "b", "--team", "Eng")

    for name, value in tls_env.items():
        monkeypatch.setenv(name, value)  # libpq reads them in this process too
    settings = Settings(home=home, database_url=url)
    task_id = asyncio.run(_run_attempt(settings, UUID(agent["id"])))
    assert str(task_id) == task["id"]

    _cli(env, "task", "approve", task["id"])
    assert _cli(env, "task", "show", task["id"])["status"] == "done"
    archive = tmp_path / "export.tar"
    _cli(env, "db", "export", str(archive))
    assert archive.stat().st_size > 0


def test_a_server_certificate_from_another_ca_is_refused_in_one_clear_line(
    tls_server: ThrowawayPostgres,
    pki: tuple[Ca, Ca, TlsFiles],
    cli_env: dict[str, str],
    clean_libpq_env: None,
) -> None:
    env = {
        **{k: v for k, v in cli_env.items() if k not in LIBPQ_VARS},
        "DATABASE_URL": tls_server.url(),
        "PGSSLMODE": "verify-full",
        "PGSSLROOTCERT": str(pki[1].path),
    }
    out = subprocess.run([*CLI, "db", "status"], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, out.stderr
    assert "certificate verify failed" in lines[0]
    assert f"127.0.0.1:{tls_server.port}" in lines[0]
