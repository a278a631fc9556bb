"""Model-gateway benchmark: the latency the gateway adds to a streamed model call, and its throughput.

A real `company-agents up` (a scratch database on the local PostgreSQL, isolation `none`) runs one
agent that holds its lease and waits (tests/acceptance/agents/gateway_agent.py, mode `stale`); the
bench takes that run's token and sends the same streamed Anthropic Messages request to the scripted
fake model server (tests/fakes/model_server.py) straight, the baseline, and through the gateway,
alternately: time to first byte and total time, p50/p99, and the difference (goal: under 5 ms added at
p99). Through the gateway every call is authenticated against the lease, reserved against the budgets,
forwarded, streamed back and metered (one cost entry each). Then requests/s through the gateway and
straight, with `-c` concurrent clients for `--seconds`.

    .venv/bin/python bench/gateway.py [-n 300] [-c 4] [--seconds 5] [--admin-dsn postgresql://…]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

try:
    from _common import Row, p50_p99, print_results  # type: ignore[import-not-found,unused-ignore]
except ImportError:
    from bench._common import Row, p50_p99, print_results  # type: ignore[no-redef,import-not-found,unused-ignore]

from tests.acceptance.test_cli_up import free_port  # noqa: E402
from tests.fakes.model_server import ModelServer, Script  # noqa: E402

CLI = [sys.executable, "-m", "company_agents.cli.main"]
AGENT = ROOT / "tests" / "acceptance" / "agents" / "gateway_agent.py"
BODY = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 100,
    "stream": True,
    "messages": [{"role": "user", "content": "benchmark"}],
}


def run(env: dict[str, str], *args: str, stdin: str | None = None) -> None:
    done = subprocess.run([*CLI, *args], env=env, input=stdin, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed: {done.stderr}")


async def one(client: httpx.AsyncClient, url: str, headers: dict[str, str]) -> tuple[float, float]:
    start = time.perf_counter()
    async with client.stream("POST", url, json=BODY, headers=headers) as resp:
        first = None
        async for _ in resp.aiter_raw():
            if first is None:
                first = time.perf_counter() - start
        if resp.status_code != 200:
            raise SystemExit(f"{url}: HTTP {resp.status_code}")
    return first or 0.0, time.perf_counter() - start


async def throughput(url: str, headers: dict[str, str], clients: int, seconds: float) -> float:
    done = 0
    stop_at = time.perf_counter() + seconds

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal done
        while time.perf_counter() < stop_at:
            await one(client, url, headers)
            done += 1

    async with httpx.AsyncClient(timeout=60) as client:
        start = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(clients)))
        return done / (time.perf_counter() - start)


async def measure(fake: str, gateway: str, token: str, n: int, clients: int, seconds: float) -> None:
    direct_headers = {"x-api-key": "sk-bench", "anthropic-version": "2023-06-01"}
    gateway_headers = {"x-api-key": token, "anthropic-version": "2023-06-01"}
    direct_url, gateway_url = f"{fake}/v1/messages", f"{gateway}/anthropic/v1/messages"
    results: dict[str, list[tuple[float, float]]] = {"straight": [], "gateway": []}
    async with httpx.AsyncClient(timeout=60) as client:
        for _ in range(20):  # warm both paths (connections, the gateway's plans and pools)
            await one(client, direct_url, direct_headers)
            await one(client, gateway_url, gateway_headers)
        for _ in range(n):
            results["straight"].append(await one(client, direct_url, direct_headers))
            results["gateway"].append(await one(client, gateway_url, gateway_headers))
    rows = []
    for name, samples in results.items():
        ttfb50, ttfb99 = p50_p99([s[0] * 1000 for s in samples])
        total50, total99 = p50_p99([s[1] * 1000 for s in samples])
        rows.append(
            Row(name, total99, {"ttfb p50 ms": ttfb50, "ttfb p99 ms": ttfb99, "total p50 ms": total50})
        )
    print_results(rows, baseline="straight", metric="total p99 ms", title=f"one streamed call, n={n}")
    added = {k: rows[1].extra[k] - rows[0].extra[k] for k in rows[0].extra}  # type: ignore[operator]
    added["total p99 ms"] = rows[1].value - rows[0].value
    print("added by the gateway (ms): " + ", ".join(f"{k} {v:+.2f}" for k, v in added.items()))
    rates = [
        Row("straight", await throughput(direct_url, direct_headers, clients, seconds)),
        Row("gateway", await throughput(gateway_url, gateway_headers, clients, seconds)),
    ]
    print_results(rates, baseline="straight", metric="requests/s", title=f"{clients} concurrent clients")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", type=int, default=300)
    parser.add_argument("-c", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--admin-dsn", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    name = f"bench_gw_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(args.admin_dsn, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    db_url = args.admin_dsn.rsplit("/", 1)[0] + f"/{name}"
    orch = None
    try:
        with tempfile.TemporaryDirectory() as tmp, ModelServer(Script()) as fake:
            home, out = Path(tmp) / "home", Path(tmp) / "calls.jsonl"
            home.mkdir()
            gateway_port = free_port()
            env = {
                **{k: v for k, v in os.environ.items() if not k.startswith("COMPANY_AGENTS_")},
                "COMPANY_AGENTS_HOME": str(home),
                "DATABASE_URL": db_url,
                "COMPANY_AGENTS_ISOLATION": "none",
                "COMPANY_AGENTS_SCHEDULER_POLL_SECONDS": "0.2",
                "COMPANY_AGENTS_API_PORT": str(free_port()),
                "COMPANY_AGENTS_TOOL_PORT": str(free_port()),
                "COMPANY_AGENTS_DASHBOARD_PORT": str(free_port()),
                "COMPANY_AGENTS_GATEWAY_PORT": str(gateway_port),
                "COMPANY_AGENTS_GATEWAY_RATE_PER_MINUTE": "10000000",
                "COMPANY_AGENTS_GATEWAY_LOOP_REPEATS": "0",  # the bench repeats one body on purpose
                "ANTHROPIC_BASE_URL": fake.url,
            }
            run(env, "db", "migrate")
            run(env, "new", "--name", "Acme", "--teams", "Eng")
            adapter = {
                "type": "process",
                "binary": sys.executable,
                "args": [str(AGENT)],
                "env": {"GATEWAY_AGENT_OUT": str(out), "GO_FILE": str(Path(tmp) / "never")},
            }
            (home / "config.json").write_text(json.dumps({"adapters": {"bench": adapter}}))
            run(env, "secret", "set", "--company", "acme", "ANTHROPIC_API_KEY", stdin="sk-bench")
            hire = ["--role", "bench", "--adapter", "bench", "--team", "Eng"]
            run(env, "agent", "hire", "--company", "acme", "--name", "a", *hire)
            run(
                env, "task", "create", "--company", "acme", "--title", "t", "--body", "stale", "--team", "Eng"
            )
            orch = subprocess.Popen(
                [*CLI, "up"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            deadline = time.monotonic() + 120
            while not out.with_suffix(".env").exists():
                if time.monotonic() > deadline or orch.poll() is not None:
                    raise SystemExit("the agent did not start")
                time.sleep(0.1)
            token = json.loads(out.with_suffix(".env").read_text())["CA_LEASE_TOKEN"]
            asyncio.run(
                measure(fake.url, f"http://127.0.0.1:{gateway_port}", token, args.n, args.c, args.seconds)
            )
            orch.send_signal(signal.SIGTERM)
            orch.wait(timeout=60)
            orch = None
    finally:
        if orch is not None:
            orch.kill()
        with psycopg.connect(args.admin_dsn, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
