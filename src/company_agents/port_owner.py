"""Who holds a port: free, our own ``up`` (found through its ``/healthz``), or another process.

``doctor`` asks this instead of trying to bind: on a running instance every port ``up`` serves is in
use, and that is the healthy state, not a failure.
"""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass

import psutil

HEALTHZ_TIMEOUT_SECONDS = 2.0


@dataclass(frozen=True)
class Orchestrator:
    """A ``company-agents up`` answering ``/healthz`` on the API port."""

    pid: int | None
    status: str  # "ok" or "degraded"
    database: str


@dataclass(frozen=True)
class PortOwner:
    free: bool
    pid: int | None = None  # None when the port is free or its owner cannot be seen
    name: str = ""


def port_owner(host: str, port: int) -> PortOwner:
    """Whether ``host:port`` can be bound and, when it cannot, which process listens there."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
            return PortOwner(free=True)
        except OSError:
            pass
    pid = _listener_pid(host, port)
    name = ""
    if pid is not None:
        try:
            name = psutil.Process(pid).name()
        except psutil.Error:
            pass
    return PortOwner(free=False, pid=pid, name=name)


def _listener_pid(host: str, port: int) -> int | None:
    """The pid listening on the port (None when the system does not tell us: another user's process)."""
    try:
        connections = psutil.net_connections(kind="tcp")
    except (psutil.AccessDenied, OSError):
        return None
    for conn in connections:
        if conn.status != psutil.CONN_LISTEN or not conn.laddr or conn.laddr.port != port:
            continue
        if conn.laddr.ip in (host, "0.0.0.0", "::") and conn.pid is not None:
            return int(conn.pid)
    return None


def orchestrator_at(host: str, api_port: int) -> Orchestrator | None:
    """Our ``up`` if it answers ``/healthz`` on the API port (a 503 is ours too: degraded), else None."""
    url = f"http://{host}:{api_port}/healthz"
    try:
        # No proxy: HTTP_PROXY in the environment must not send a loopback request elsewhere.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(url, timeout=HEALTHZ_TIMEOUT_SECONDS) as resp:
            raw = resp.read()
    except urllib.error.HTTPError as exc:
        raw = exc.read()
    except (OSError, ValueError):
        return None
    try:
        data = json.loads(raw)["data"]
        if "version" not in data or "status" not in data:
            return None
    except (ValueError, KeyError, TypeError):
        return None  # something else answers HTTP on that port
    pid = data.get("pid")
    return Orchestrator(
        pid=int(pid) if isinstance(pid, int) else None,
        status=str(data["status"]),
        database=str(data.get("database", "")),
    )
