"""A test agent that calls the model gateway itself (Anthropic Messages, stdlib HTTP), as a CLI would
with ``ANTHROPIC_BASE_URL`` pointed at it. Behaviour from the task body:

calls N MAX    N requests, each a different body asking for MAX output tokens; stop at the first refusal
loop N         the same request body N times
stream         one streamed request; ``$GATEWAY_AGENT_OUT.first`` is written as soon as its first line arrives
own            one request as a subscription setup makes it: its own login, the run's token in the path
stale          wait for the file named in $GO_FILE (the test reaps the lease meanwhile), then one request

Its environment is written to ``$GATEWAY_AGENT_OUT.env`` first (the test checks no key is in it).
Every answer (status, body) is a line of ``$GATEWAY_AGENT_OUT``; the agent then completes over the
json-lines protocol when every call was answered 200, and exits 1 otherwise.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

OUT = Path(os.environ["GATEWAY_AGENT_OUT"])


OWN_LOGIN = "sk-ant-oat-the-users-own-login"


def call(body: dict[str, object], *, on_first_line: Path | None = None, own: bool = False) -> int:
    token = os.environ["CA_LEASE_TOKEN"]
    # A subscription setup: the run's token in the path, the CLI's own credentials in the header.
    url = (
        f"{os.environ['CA_GATEWAY_URL']}/t/{token}/anthropic"
        if own
        else f"{os.environ['CA_GATEWAY_URL']}/anthropic"
    )
    request = urllib.request.Request(
        url + "/v1/messages",
        data=json.dumps(body).encode(),
        method="POST",
        headers={
            "x-api-key": OWN_LOGIN if own else token,
            "anthropic-version": "2023-06-01",
            "content-type": "application/json",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as resp:
            status = int(resp.status)
            lines = []
            for line in resp:
                if on_first_line is not None and not on_first_line.exists():
                    on_first_line.write_text(line.decode())
                lines.append(line.decode())
            text = "".join(lines)
    except urllib.error.HTTPError as exc:
        status, text = exc.code, exc.read().decode()
    with OUT.open("a") as fh:
        fh.write(json.dumps({"status": status, "body": text}) + "\n")
    return status


def body(i: int, max_tokens: int) -> dict[str, object]:
    return {
        "model": "claude-sonnet-4-5",
        "max_tokens": max_tokens,
        "stream": True,
        "messages": [{"role": "user", "content": f"request {i}"}],
    }


def main() -> int:
    OUT.with_suffix(".env").write_text(json.dumps(dict(os.environ)))
    task = json.loads(Path(".company-agents/task.json").read_text())
    words = str(task.get("body") or task.get("description") or "").split()
    statuses: list[int] = []
    if words[0] == "calls":
        for i in range(int(words[1])):
            statuses.append(call(body(i, int(words[2]))))
            if statuses[-1] != 200:
                break
    elif words[0] == "loop":
        for _ in range(int(words[1])):
            statuses.append(call(body(0, 100)))
            if statuses[-1] != 200:
                break
    elif words[0] == "stream":
        statuses.append(call(body(0, 100), on_first_line=OUT.with_suffix(".first")))
    elif words[0] == "own":
        statuses.append(call(body(0, 100), own=True))
    elif words[0] == "stale":
        go = Path(os.environ["GO_FILE"])
        while not go.exists():
            time.sleep(0.05)
        statuses.append(call(body(0, 100)))
    if statuses and all(s == 200 for s in statuses):
        print(json.dumps({"type": "complete", "output": {"calls": len(statuses)}}), flush=True)
        return 0
    return 1


if __name__ == "__main__":
    sys.exit(main())
