"""A test agent whose behaviour the test picks through the task body (one word):

complete     report progress, a cost, then complete
crash_once   on attempt 1 wait to be killed; later attempts complete
hang         start a child in its own group, then hang (ignoring SIGTERM) until killed
hang_once    on attempt 1 as hang; later attempts complete
orphan       on attempt 1 start a writer that escapes the agent's process group and its parent's death
             (its pid in the file `orphan_pid`), then hang; the writer waits for the file named in
             $ORPHAN_GO, calls mark_complete over HTTP with the lease token and writes the HTTP status to
             $ORPHAN_GO.status; later attempts complete
wait_stop    wait for a shutdown line on stdin, then exit 0 without completing
wait_go      report progress, wait for the file named in $GO_FILE, then complete (progress, cost, complete)
bad_cost     report a cost the database refuses (an amount that is not a number), then complete
bad_complete complete with an output the database refuses (a NUL character in JSON), then exit 0
soak         work a random short time (up to $SOAK_MAX_SECONDS, default 0.5), then crash (exit 3) with
             probability $SOAK_CRASH (default 0.1), else complete
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path


def emit(**event: object) -> None:
    print(json.dumps(event), flush=True)


def complete(task: dict[str, object]) -> None:
    emit(type="progress", message="working", step="write", percent=50)
    emit(type="cost", model="test-model", inputTokens=10, outputTokens=5)
    Path("result.txt").write_text(f"done: {task['title']}\n")
    emit(type="complete", output={"title": task["title"], "attempt": task["attempt"]}, reasoning="scripted")


def late_write() -> None:
    go = Path(os.environ["ORPHAN_GO"])
    while not go.exists():
        time.sleep(0.05)
    body = json.dumps({"fencingToken": int(os.environ["CA_FENCING_TOKEN"]), "output": "from the orphan"})
    request = urllib.request.Request(
        os.environ["MCP_SERVER_URL"] + "/tools/mark_complete",
        data=body.encode(),
        method="POST",
        headers={
            "Authorization": "Bearer " + os.environ["CA_LEASE_TOKEN"],
            "Content-Type": "application/json",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            status: int | str = resp.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except OSError as exc:  # say why, rather than dying unseen
        status = f"error: {exc!r}"
    Path(str(go) + ".status").write_text(str(status))


def main() -> None:
    if sys.argv[1:] == ["--late-write"]:
        late_write()
        return
    task = json.loads(Path(".company-agents/task.json").read_text())
    mode = str(task["body"]).strip()
    Path("pid").write_text(str(os.getpid()))
    if mode == "complete" or (mode in ("crash_once", "orphan", "hang_once") and int(task["attempt"]) > 1):
        complete(task)
        return
    if mode == "crash_once":
        emit(type="progress", message="about to be killed")
        time.sleep(600)
    if mode in ("hang", "hang_once"):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        child = subprocess.Popen(["sleep", "600"])
        Path("child_pid").write_text(str(child.pid))
        emit(type="progress", message="hanging")
        time.sleep(600)
    if mode == "orphan":
        # A new session and no parent-death signal: neither the orchestrator's death nor the end of the
        # agent's group reaches it, as for a process that detached itself. Only fencing stops its write.
        writer = subprocess.Popen(
            [sys.executable, __file__, "--late-write"],
            start_new_session=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        Path("orphan_pid").write_text(str(writer.pid))
        emit(type="progress", message="waiting for go")
        time.sleep(600)
        return
    if mode == "wait_go":
        emit(type="progress", message="waiting for go")
        go = Path(os.environ["GO_FILE"])
        while not go.exists():
            time.sleep(0.05)
        complete(task)
        return
    if mode == "soak":
        time.sleep(random.uniform(0.02, float(os.environ.get("SOAK_MAX_SECONDS", "0.5"))))
        if random.random() < float(os.environ.get("SOAK_CRASH", "0.1")):
            sys.exit(3)
        complete(task)
        return
    if mode == "bad_cost":
        emit(type="cost", model="test-model", inputTokens=1, outputTokens=1, usd="a lot")
        complete(task)
        return
    if mode == "bad_complete":
        emit(type="complete", output={"text": "nul \u0000 here"}, reasoning="scripted")
        return
    if mode == "wait_stop":
        emit(type="progress", message="waiting for shutdown")
        for line in sys.stdin:
            if json.loads(line).get("type") == "shutdown":
                return
    sys.exit(3)


if __name__ == "__main__":
    main()
