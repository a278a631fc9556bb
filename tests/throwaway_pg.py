"""A throwaway PostgreSQL server for tests that must stop, kill or reconfigure "the external database".

The machine's shared PostgreSQL serves every test in parallel, so it is never stopped; tests that need an
outage or TLS make their own cluster here: the system's PostgreSQL binaries (Debian layout,
``/usr/lib/postgresql/<major>/bin``), a data directory under the test's tmp path, a free loopback TCP
port, trust authentication. initdb refuses to run as root, so as root the server runs as the ``postgres``
OS user and the data directory is handed to it.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from company_agents.db.embedded import add_traverse_to_parents

PG_LIB = Path("/usr/lib/postgresql")
SERVICE_USER = "postgres"


def find_bin_dir() -> Path | None:
    """The newest installed PostgreSQL's bin directory, or None when there is none."""
    versions = sorted(
        (p for p in PG_LIB.glob("*/bin") if (p / "initdb").exists() and p.parent.name.isdigit()),
        key=lambda p: int(p.parent.name),
    )
    return versions[-1] if versions else None


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class TlsFiles:
    """Server certificate, key and (optionally) the CA clients are checked against, as PEM files."""

    cert: Path
    key: Path
    ca: Path | None = None


def _private_dir() -> Path:
    """A directory of its own under the system tmp dir, not under pytest's: other pytest sessions on
    the machine reset ``/tmp/pytest-of-<user>`` to 0700, which would lock the service user out."""
    return Path(tempfile.mkdtemp(prefix="ca-pg-"))


@dataclass
class ThrowawayPostgres:
    """One cluster: ``init()`` once, then ``start()``/``stop()``/``kill()`` as the test needs, and
    ``cleanup()`` at the end (stops it and removes its directory)."""

    root: Path = field(default_factory=_private_dir)
    tls: TlsFiles | None = None
    port: int = field(default_factory=free_port)
    bin_dir: Path = field(default_factory=lambda: find_bin_dir() or PG_LIB / "missing")

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log_file(self) -> Path:
        return self.root / "server.log"

    def url(self, database: str = "postgres", **query: str) -> str:
        tail = ("?" + "&".join(f"{k}={v}" for k, v in query.items())) if query else ""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}{tail}"

    def _run(self, *argv: str, timeout: float = 60) -> None:
        """One of the server's programs, as the service user when we are root."""
        entry = pwd.getpwnam(SERVICE_USER) if os.geteuid() == 0 else None
        out = subprocess.run(
            [str(self.bin_dir / argv[0]), *argv[1:]],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"},
            user=entry.pw_uid if entry else None,
            group=entry.pw_gid if entry else None,
            extra_groups=[] if entry else None,
        )
        if out.returncode != 0:
            raise RuntimeError(
                f"{argv[0]} failed ({out.returncode}): {out.stderr.strip()}\n{self._log_tail()}"
            )

    def _log_tail(self) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-10:])
        except OSError:
            return ""

    def init(self) -> ThrowawayPostgres:
        self.root.mkdir(parents=True, exist_ok=True)
        self.data.mkdir(mode=0o700, exist_ok=True)
        if os.geteuid() == 0:
            entry = pwd.getpwnam(SERVICE_USER)
            add_traverse_to_parents(self.root)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
            os.chown(self.data, entry.pw_uid, entry.pw_gid)
        self._run(
            "initdb",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
            "-U",
            "postgres",
            "-D",
            str(self.data),
        )
        lines = [
            f"port = {self.port}",
            "listen_addresses = '127.0.0.1'",
            "unix_socket_directories = ''",  # TCP only: no socket path to share or clean up
            "fsync = off",
            "max_connections = 50",
        ]
        if self.tls is not None:
            lines += ["ssl = on", *self._tls_lines()]
            # TLS or nothing: a client that would fall back to plain text is refused, so a passing
            # test proves the connection was encrypted.
            (self.data / "pg_hba.conf").write_text("hostssl all all 127.0.0.1/32 trust\n")
        with (self.data / "postgresql.conf").open("a") as fh:
            fh.write("\n".join(lines) + "\n")
        return self

    def _tls_lines(self) -> list[str]:
        """Copy the TLS files into the data directory, owned by the server (it insists on a 0600 key)."""
        assert self.tls is not None
        names = {"ssl_cert_file": ("server.crt", self.tls.cert), "ssl_key_file": ("server.key", self.tls.key)}
        if self.tls.ca is not None:
            names["ssl_ca_file"] = ("ca.crt", self.tls.ca)
        lines = []
        for option, (name, source) in names.items():
            target = self.data / name
            shutil.copyfile(source, target)
            target.chmod(0o600)
            if os.geteuid() == 0:
                entry = pwd.getpwnam(SERVICE_USER)
                os.chown(target, entry.pw_uid, entry.pw_gid)
            lines.append(f"{option} = '{name}'")
        return lines

    def start(self, timeout: float = 60) -> None:
        # -l: the log file lives outside the data dir so a crashed server's log survives a re-init.
        self._run(
            "pg_ctl", "start", "-w", "-t", str(int(timeout)), "-D", str(self.data), "-l", str(self.log_file)
        )
        self.wait_ready(timeout)

    def stop(self, mode: str = "fast") -> None:
        """A clean stop: sessions are ended with admin_shutdown (57P01), as on a service restart."""
        self._run("pg_ctl", "stop", "-w", "-m", mode, "-D", str(self.data))

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None

    def kill(self, timeout: float = 30) -> None:
        """kill -9 the postmaster and wait until it is reaped (its backends notice and exit on their
        own): until then a new postmaster refuses to start on the lock file."""
        pid = self.postmaster_pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + timeout
        while _exists(pid) and time.monotonic() < deadline:
            time.sleep(0.05)

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(self.url(), connect_timeout=2, sslmode="prefer"):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def cleanup(self) -> None:
        """Stop the server if it runs and remove its directory (for fixtures' teardown); never raises."""
        if self.postmaster_pid() is not None:
            try:
                self.stop("immediate")
            except (RuntimeError, subprocess.SubprocessError, OSError):
                self.kill()
        shutil.rmtree(self.root, ignore_errors=True)
