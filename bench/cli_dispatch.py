"""Agent-CLI dispatch benchmark: enqueue → the CLI's first model request, per CLI, through a real `up`.

A real `company-agents up` (embedded database, the isolation mode it chooses) runs one idle agent per
CLI adapter (claude-code, codex, gemini-cli); the provider is the scripted fake model server of the
tests (tests/fakes/model_server.py), which logs when each request arrives. A task is enqueued
(INSERT + NOTIFY, as `task create` does) with a unique title, and its latency is the first model
request carrying that title minus the enqueue. The baseline, in the same run, is the same CLI launched
by hand with the same argv, environment and config files (the adapter's own launch plan) in a fresh
workspace: start → first request. The ratio is our overhead (goal: under 1.2 times).

    .venv/bin/python bench/cli_dispatch.py [-n 5] [--cli claude-code --cli codex …]

Needs the pinned CLIs (scripts/install-agent-clis); one that is missing is skipped with the reason.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

try:
    from _common import Row, p50_p99, print_results  # type: ignore[import-not-found,unused-ignore]
except ImportError:
    from bench._common import Row, p50_p99, print_results  # type: ignore[no-redef,import-not-found,unused-ignore]

from tests.fakes.model_server import ModelServer, Script  # noqa: E402

from company_agents.adapters.clis.binaries import PINNED, cached_binary  # noqa: E402

CLI = [sys.executable, "-m", "company_agents.cli.main"]
CLIS = {
    # type: (team, model, key variable)
    "claude-code": ("Claude", "claude-sonnet-4-5", "ANTHROPIC_API_KEY"),
    "codex": ("Codex", "gpt-5.1", "OPENAI_API_KEY"),
    "gemini-cli": ("Gemini", "gemini-2.5-flash", "GEMINI_API_KEY"),
}


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cli(env: dict[str, str], *args: str, stdin: str | None = None) -> None:
    subprocess.run(
        [*CLI, *args], env=env, check=True, capture_output=True, timeout=120, input=stdin, text=True
    )


def _healthy(env: dict[str, str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            url = f"http://127.0.0.1:{env['COMPANY_AGENTS_API_PORT']}/healthz"
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.02)
    raise RuntimeError("/healthz never became ok")


def _first_request(server: ModelServer, marker: str, after: float, timeout: float = 60) -> float:
    """The monotonic time of the first model request whose body carries ``marker``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for request in server.model_requests():
            if request.at >= after and marker in json.dumps(request.body):
                return request.at
        time.sleep(0.002)
    raise RuntimeError(f"no model request carried {marker!r}")


def _stub_mcp() -> tuple[str, object]:
    """An MCP server with our tool names and no checks, for the launches by hand (they hold no lease;
    Codex will not start without its required server)."""
    import logging
    import threading

    import uvicorn
    from mcp.server.mcpserver import MCPServer

    logging.getLogger("mcp").setLevel(logging.WARNING)  # one line per session otherwise
    stub = MCPServer("company-agents")

    @stub.tool()
    def mark_complete(output: str) -> str:  # noqa: ARG001 (the baseline only needs the tool listed)
        return "recorded"

    port = _port()
    config = uvicorn.Config(stub.streamable_http_app(), host="127.0.0.1", port=port, log_level="error")
    uv = uvicorn.Server(config)
    threading.Thread(target=uv.run, daemon=True).start()
    while not uv.started:
        time.sleep(0.01)
    return f"http://127.0.0.1:{port}/mcp", uv


def _by_hand(
    kind: str, model: str, server: ModelServer, env: dict[str, str], marker: str, mcp_url: str
) -> float:
    """The same CLI with the adapter's own launch plan, started directly: start → first request."""
    from company_agents.adapters.clis.plan import plan_run
    from company_agents.adapters.config import builtin_adapters

    with tempfile.TemporaryDirectory(prefix="ca-cli-bench-") as tmp:
        ws = Path(tmp)
        for sub in (".home/.config", ".home/.cache", ".tmp", ".company-agents"):
            (ws / sub).mkdir(parents=True)
        subprocess.run(["git", "init", "-q"], cwd=ws, check=True)
        _, _, plan = plan_run(
            builtin_adapters()[kind],
            workspace=ws,
            task={"title": marker, "body": "benchmark"},
            agent={"model": model},
            mcp_url=mcp_url,
            lease_token="bench-not-a-token",
            secret_env={CLIS[kind][2]: "sk-bench"},
            environ=env,
        )
        run_env = {
            "PATH": env.get("PATH", "/usr/bin:/bin"),
            **plan.env,
            "HOME": str(ws / ".home"),
            "TMPDIR": str(ws / ".tmp"),
            "CA_LEASE_TOKEN": "bench-not-a-token",
        }
        t0 = time.monotonic()
        proc = subprocess.Popen(
            plan.argv,
            cwd=ws,
            env=run_env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            return _first_request(server, marker, t0) - t0
        finally:
            proc.kill()
            proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", type=int, default=5)
    parser.add_argument("--cli", action="append", choices=sorted(CLIS))
    args = parser.parse_args()
    kinds = []
    for kind in args.cli or list(CLIS):
        if cached_binary(kind, dict(os.environ)) is None:
            print(f"skipping {kind}: {PINNED[kind].spec} is not installed (scripts/install-agent-clis)")
        else:
            kinds.append(kind)
    if not kinds:
        return
    with tempfile.TemporaryDirectory(prefix="ca-cli-dispatch-") as tmp, ModelServer(Script()) as server:
        home = Path(tmp) / "home"
        env = {
            k: v for k, v in os.environ.items() if not k.startswith("COMPANY_AGENTS_") and k != "DATABASE_URL"
        }
        env.update(
            {
                "COMPANY_AGENTS_HOME": str(home),
                "COMPANY_AGENTS_API_PORT": str(_port()),
                "COMPANY_AGENTS_TOOL_PORT": str(_port()),
                "COMPANY_AGENTS_DASHBOARD_PORT": str(_port()),
                "COMPANY_AGENTS_SCHEDULER_POLL_SECONDS": "1",
                "ANTHROPIC_BASE_URL": server.url,
                "OPENAI_BASE_URL": f"{server.url}/v1",
                "GOOGLE_GEMINI_BASE_URL": server.url,
            }
        )
        _cli(env, "new", "--name", "Bench", "--teams", ",".join(CLIS[k][0] for k in kinds))
        for kind in kinds:
            team, model, key = CLIS[kind]
            _cli(env, "secret", "set", "--company", "bench", key, stdin="sk-bench")
            _cli(env, "agent", "hire", "--company", "bench", "--name", f"{kind}-cli", "--role", "bench",
                 "--adapter", kind, "--model", model, "--team", team)  # fmt: skip
        direct: dict[str, list[float]] = {k: [] for k in kinds}
        via_up: dict[str, list[float]] = {k: [] for k in kinds}
        up = subprocess.Popen([*CLI, "up"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        agent_ids: list[str] = []
        stub_url, stub = _stub_mcp()
        try:
            _healthy(env)
            from company_agents.db.database import libpq_url
            from company_agents.db.embedded import EmbeddedServer

            db = EmbeddedServer(home / "db")
            db.start()
            with psycopg.connect(libpq_url(db.uri("company_agents"))) as conn:
                teams = dict(conn.execute("SELECT name, id FROM teams").fetchall())
                (company,) = conn.execute("SELECT id FROM companies").fetchone() or (None,)
                agent_ids = [str(r[0]) for r in conn.execute("SELECT id FROM agents").fetchall()]
                conn.commit()
                for i in range(args.n + 1):  # the first round warms up (the agent's OS user, caches)
                    for kind in kinds:
                        marker = f"bench-{kind}-{i}-{time.time_ns()}"
                        by_hand = _by_hand(kind, CLIS[kind][1], server, env, f"{marker}-direct", stub_url)
                        t0 = time.monotonic()
                        conn.execute(
                            "INSERT INTO tasks (company_id, title, body, assigned_team_id, max_attempts) "
                            "VALUES (%s, %s, 'benchmark', %s, 1)",
                            (company, marker, teams[CLIS[kind][0]]),
                        )
                        conn.execute("SELECT pg_notify('company_agents_tasks', %s)", (str(company),))
                        conn.commit()
                        latency = _first_request(server, marker, t0) - t0
                        # Idle again before the next one: the run ends (without our MCP tools it fails).
                        while conn.execute(
                            "SELECT count(*) FROM runs WHERE status = 'running'"
                        ).fetchone() != (0,):
                            conn.commit()
                            time.sleep(0.02)
                        conn.commit()
                        if i:
                            direct[kind].append(by_hand)
                            via_up[kind].append(latency)
            db.release()
        finally:
            stub.should_exit = True  # type: ignore[attr-defined]
            up.terminate()
            up.wait(timeout=60)
            if os.geteuid() == 0:
                for agent_id in agent_ids:
                    name = "ca-" + agent_id.replace("-", "")[:12]
                    subprocess.run(["userdel", name], check=False, capture_output=True)
    for kind in kinds:
        d50, d99 = p50_p99(direct[kind])
        u50, u99 = p50_p99(via_up[kind])
        print_results(
            [
                Row("by hand, same flags (baseline)", d50 * 1000, {"p99 ms": round(d99 * 1000, 1)}),
                Row("enqueue via up", u50 * 1000, {"p99 ms": round(u99 * 1000, 1)}),
            ],
            baseline="by hand, same flags (baseline)",
            metric="p50 ms",
            title=f"{kind}: → first model request (n={args.n}; goal: under 1.2 times)",
        )


if __name__ == "__main__":
    main()
