"""A test agent that asks before it acts: with no answer in task.json it asks (without waiting) and
exits; with an approval it completes, applying the edits it was given."""

from __future__ import annotations

import json
import os
import sys
import urllib.request
from pathlib import Path

ACTION = "Publish the release notes"


def emit(**event: object) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def main() -> None:
    task = json.loads(Path(".company-agents/task.json").read_text())
    answers = {a["action"]: a for a in task["approvals"]}
    answer = answers.get(ACTION)
    if answer is not None and answer["status"] in ("approved", "approved_with_edits"):
        output = {"published": True, "edits": answer["edits"], "attempt": task["attempt"]}
        emit(type="complete", output=output)
        return
    body = {
        "fencingToken": int(os.environ["CA_FENCING_TOKEN"]),
        "action": ACTION,
        "reasoning": "the release is tagged",
        "categories": ["external_send"],
        "cost": {"usd": "0"},
        "waitSeconds": 0,
    }
    request = urllib.request.Request(
        os.environ["MCP_SERVER_URL"] + "/tools/request_approval",
        data=json.dumps(body).encode(),
        method="POST",
        headers={
            "Authorization": "Bearer " + os.environ["CA_LEASE_TOKEN"],
            "Content-Type": "application/json",
        },
    )
    with urllib.request.urlopen(request, timeout=30) as resp:
        status = json.load(resp)["data"]["status"]
    emit(type="progress", message=f"approval {status}; ending the run")
    sys.exit(0)


if __name__ == "__main__":
    main()
