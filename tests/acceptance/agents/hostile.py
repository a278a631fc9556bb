"""A hostile agent: it tries every escape of docs/security.md and reports each result in its output.

The task body is JSON: ``orchestratorPid``, ``victimRunId`` (a run of another agent, holding its lease
meanwhile), ``marker`` (a string to find in a leaked DATABASE_URL) and ``grandchild`` (a marker for the
detached process it leaves behind, which must not outlive the run). Each attempt is reported as
``{"escaped": bool, "detail": str}``; the run completes whatever happened.
"""

from __future__ import annotations

import glob
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

LEASE_TOKEN = re.compile(r"lt_[A-Za-z0-9_-]{43}")
URL = re.compile(r"postgres(?:ql)?(?:\+psycopg)?://[^\s\x00'\"]+")


def attempt(results: dict[str, Any], name: str, try_it: Callable[[], tuple[bool, str]]) -> None:
    try:
        escaped, detail = try_it()
    except Exception as exc:
        escaped, detail = False, f"{type(exc).__name__}: {exc}"[:300]
    results[name] = {"escaped": escaped, "detail": detail[:300]}


def read(path: str | Path, limit: int = 1 << 16) -> str:
    with open(path, "rb") as fh:
        return fh.read(limit).decode(errors="replace")


def process_texts() -> list[tuple[str, str]]:
    """Every process's cmdline and environment this agent can read, and `ps` output with environments."""
    found: list[tuple[str, str]] = []
    for entry in glob.glob("/proc/[0-9]*"):
        for name in ("cmdline", "environ"):
            try:
                found.append((f"{entry}/{name}", read(f"{entry}/{name}").replace("\x00", " ")))
            except OSError:
                continue
    for argv in (["ps", "-eww", "-o", "pid,args"], ["ps", "eww", "-e"]):
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
            found.append((" ".join(argv), out.stdout))
        except (OSError, subprocess.TimeoutExpired) as exc:
            found.append((" ".join(argv), f"failed: {exc}"))
    return found


def leave_grandchild(marker: str) -> None:
    """A process in a session of its own whose parent exits at once: re-parented, not in our group."""
    code = "import sys, time; time.sleep(600)"
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import subprocess, sys; subprocess.Popen([sys.executable, '-c', sys.argv[1], sys.argv[2]], "
            "start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, "
            "stderr=subprocess.DEVNULL, close_fds=True)",
            code,
            marker,
        ],
        check=True,
        timeout=30,
    )


def main() -> None:
    task = json.loads(Path(".company-agents/task.json").read_text())
    brief = json.loads(task["body"])
    workspace = Path(os.environ.get("CA_WORKSPACE") or os.getcwd())
    home = workspace.parent.parent  # <home>/runs/<run-id>
    orchestrator = int(brief["orchestratorPid"])
    victim = str(brief["victimRunId"])
    own_token = os.environ.get("CA_LEASE_TOKEN", "")
    results: dict[str, Any] = {}
    leave_grandchild(str(brief["grandchild"]))

    attempt(results, "read_master_key", lambda: (True, f"{len(read(home / 'secrets' / 'master.key'))} bytes"))
    attempt(results, "read_config", lambda: (True, read(home / "config.json")[:100]))

    def list_runs() -> tuple[bool, str]:
        others = [n for n in os.listdir(home / "runs") if n != workspace.name]
        return bool(others), f"other runs listed: {others[:5]}"

    attempt(results, "list_runs", list_runs)
    attempt(
        results,
        "read_other_workspace",
        lambda: (True, read(home / "runs" / victim / ".company-agents" / "task.json")[:100]),
    )

    def embedded_socket() -> tuple[bool, str]:
        import psycopg

        sockets = glob.glob(str(home / "db" / ".s.PGSQL.*"))
        errors = []
        for user in ("postgres", "root", os.environ.get("USER", "postgres")):
            try:
                with psycopg.connect(host=str(home / "db"), user=user, dbname="postgres", connect_timeout=3):
                    return True, f"connected as {user}"
            except psycopg.Error as exc:
                errors.append(str(exc).strip().splitlines()[0][:80])
        return False, f"sockets seen: {sockets}; {errors[0] if errors else ''}"

    attempt(results, "connect_embedded_socket", embedded_socket)

    def external_url() -> tuple[bool, str]:
        import psycopg

        sources = [("env DATABASE_URL", os.environ.get("DATABASE_URL", ""))]
        for path in (home / ".env", home / "config.json", f"/proc/{orchestrator}/environ"):
            try:
                sources.append((str(path), read(path)))
            except OSError:
                continue
        sources += process_texts()
        for where, text in sources:
            for url in URL.findall(text):
                if brief["marker"] in url:
                    try:
                        with psycopg.connect(url.replace("+psycopg", ""), connect_timeout=3):
                            return True, f"connected with the URL from {where}"
                    except psycopg.Error:
                        return True, f"found the URL (with its password) in {where}"
        return False, "no DATABASE_URL with credentials in reach"

    attempt(results, "connect_external_url", external_url)

    def proc_file(name: str, sign: str) -> Callable[[], tuple[bool, str]]:
        def go() -> tuple[bool, str]:
            text = read(f"/proc/{orchestrator}/{name}")
            return sign in text, f"read {len(text)} bytes, {sign!r} {'in' if sign in text else 'not in'} it"

        return go

    attempt(results, "read_orchestrator_environ", proc_file("environ", "COMPANY_AGENTS_HOME="))
    attempt(results, "read_orchestrator_cmdline", proc_file("cmdline", "company_agents"))

    def signal_orchestrator() -> tuple[bool, str]:
        os.kill(orchestrator, signal.SIGCONT)  # harmless if it lands, and as good a test as any
        return True, f"SIGCONT delivered to {orchestrator}"

    attempt(results, "signal_orchestrator", signal_orchestrator)

    found_tokens: set[str] = set()

    def ps_token() -> tuple[bool, str]:
        texts = process_texts()
        for _, text in texts:
            found_tokens.update(t for t in LEASE_TOKEN.findall(text) if t != own_token)
        victims = [where for where, text in texts if victim in text]
        return bool(found_tokens), f"{len(found_tokens)} other tokens; victim seen in {victims[:3]}"

    attempt(results, "lease_token_in_ps", ps_token)

    def tool_with_other_token() -> tuple[bool, str]:
        statuses = []
        for token in sorted(found_tokens) or ["lt_" + "A" * 43]:  # a forged one when none was found
            request = urllib.request.Request(
                os.environ["MCP_SERVER_URL"] + "/tools/report_progress",
                data=json.dumps({"fencingToken": 1, "message": "from the hostile agent"}).encode(),
                method="POST",
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            )
            try:
                with urllib.request.urlopen(request, timeout=10) as resp:
                    return True, f"accepted ({resp.status})"
            except urllib.error.HTTPError as exc:
                statuses.append(exc.code)
        return False, f"refused: {statuses}"

    attempt(results, "tool_with_other_token", tool_with_other_token)
    Path("escapes.json").write_text(json.dumps(results, indent=2))
    time.sleep(0.1)
    print(json.dumps({"type": "complete", "output": {"attempts": results}}), flush=True)


if __name__ == "__main__":
    main()
