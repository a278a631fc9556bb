"""A test agent that reports a tool cost every fraction of a second (tests/integration/test_budget_runs.py).

The mode is the task body: ``obey`` reports COUNT costs of USD each, INTERVAL seconds apart, then
completes, and exits at once on a ``shutdown`` line; ``stubborn`` starts a child in its own process
group, writes both pids to ``pids`` in its workspace, ignores SIGTERM and ``shutdown``, and reports its
costs forever; ``tools`` reports tool calls, one every INTERVAL, forever (a loop).
Settings come from the environment: SPEND_USD, SPEND_COUNT, SPEND_INTERVAL.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path


def emit(**event: object) -> None:
    print(json.dumps(event), flush=True)  # noqa: T201 (the protocol is stdout)


def watch_stdin() -> None:
    for line in sys.stdin:
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        if event.get("type") == "shutdown":
            os._exit(0)


def main() -> None:
    task = json.loads(Path(".company-agents/task.json").read_text())
    mode = str(task["body"]).strip()
    usd = os.environ.get("SPEND_USD", "0.10")
    count = int(os.environ.get("SPEND_COUNT", "15"))
    interval = float(os.environ.get("SPEND_INTERVAL", "0.05"))
    run = os.environ["CA_RUN_ID"]
    if mode == "stubborn":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
        Path("pids").write_text(f"{os.getpid()} {child.pid}\n")
        n = 0
        while True:
            n += 1
            emit(type="cost", kind="tool", name="search", usd=usd, id=f"{run}-{n}")
            time.sleep(interval)
    threading.Thread(target=watch_stdin, daemon=True).start()
    if mode == "tools":
        while True:
            emit(type="tool_call", name="search")
            time.sleep(interval)
    for n in range(1, count + 1):
        emit(type="cost", kind="tool", name="search", usd=usd, id=f"{run}-{n}")
        time.sleep(interval)
    emit(type="complete", output={"costs": count}, reasoning="spent as told")


if __name__ == "__main__":
    main()
