"""CLI benchmark: how long a user waits for `company-agents` to answer.

Each figure is the median wall-clock time of a fresh `company-agents …` process (the console script
of the venv), measured against the interpreter starting and exiting with nothing imported — the part
no Python CLI can avoid — in the same run:

- ``--help`` and a group's ``--help`` (goal ≤ 0.25 s);
- a read command (``company list --json``) with `up` running (goal ≤ 0.5 s), where the command
  attaches to the server `up` started;
- the same read without a running server (goal ≤ 1.0 s), where the command starts the embedded
  server itself and the last process out stops it.

    .venv/bin/python bench/cli.py [-n 7]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

try:
    from _common import Row, print_results  # type: ignore[import-not-found,unused-ignore]
    from startup import _port  # type: ignore[import-not-found,unused-ignore]
except ImportError:
    from bench._common import Row, print_results  # type: ignore[no-redef,import-not-found,unused-ignore]
    from bench.startup import _port  # type: ignore[no-redef,import-not-found,unused-ignore]

CLI = str(Path(sys.executable).with_name("company-agents"))


# Kept from the caller: COMPANY_AGENTS_ISOLATION=none on a machine without bubblewrap.
ISOLATION = "COMPANY_AGENTS_ISOLATION"


def _env(home: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if (not k.startswith("COMPANY_AGENTS_") and k != "DATABASE_URL") or k == ISOLATION
    }
    env.update(
        {
            "COMPANY_AGENTS_HOME": str(home),
            "COMPANY_AGENTS_API_PORT": str(_port()),
            "COMPANY_AGENTS_TOOL_PORT": str(_port()),
            "COMPANY_AGENTS_DASHBOARD_PORT": str(_port()),
            # Its own gateway port too: two `up`s on one machine would both want 4201.
            "COMPANY_AGENTS_GATEWAY_PORT": str(_port()),
            "COMPANY_AGENTS_BACKUP_INTERVAL_SECONDS": "0",
        }
    )
    return env


def time_command(argv: list[str], env: dict[str, str], n: int) -> list[float]:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - start)
    return times


def start_up(env: dict[str, str]) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [CLI, "up"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    url = f"http://127.0.0.1:{env['COMPANY_AGENTS_API_PORT']}/healthz"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=0.5).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise RuntimeError("up exited")
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("up did not answer /healthz")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", type=int, default=7, help="runs per command (the median is reported)")
    args = parser.parse_args()
    med = statistics.median
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="ca-bench-cli-") as tmp:
        home = Path(tmp) / "home"
        env = _env(home)
        base = time_command([sys.executable, "-S", "-c", "pass"], env, args.n)
        rows.append(Row("python -S -c pass (baseline)", med(base), {}))
        for label, argv, goal in (
            ("--help", [CLI, "--help"], 0.25),
            ("task --help", [CLI, "task", "--help"], 0.25),
        ):
            runs = time_command(argv, env, args.n)
            rows.append(Row(label, med(runs), {"goal s": goal, "p max s": round(max(runs), 3)}))
        read = [CLI, "company", "list", "--json"]
        time_command([CLI, "company", "create", "--name", "Bench"], env, 1)  # initdb + migrations, not timed
        runs = time_command(read, env, args.n)
        rows.append(
            Row("company list --json, no server", med(runs), {"goal s": 1.0, "p max s": round(max(runs), 3)})
        )
        up = start_up(env)
        try:
            runs = time_command(read, env, args.n)
        finally:
            os.killpg(up.pid, signal.SIGTERM)
            up.wait(timeout=60)
        rows.append(
            Row("company list --json, up running", med(runs), {"goal s": 0.5, "p max s": round(max(runs), 3)})
        )
    print_results(rows, baseline=rows[0].name, metric="seconds", title=f"CLI wall-clock (median of {args.n})")


if __name__ == "__main__":
    main()
