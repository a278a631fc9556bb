"""What an agent CLI is told: the task as its prompt, the agent's role files as its system prompt."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from company_agents.workspaces import CONTEXT_DIR

FINISH = (
    "When the task is done, call the `mark_complete` tool of the `ca` MCP server with your result as "
    "`output`. If you cannot do it, call `mark_failed` with the reason. Report progress with "
    "`report_progress` when there is something to say. Ending without one of these fails the attempt."
)


def task_prompt(task: dict[str, Any]) -> str:
    title = str(task.get("title") or "").strip()
    body = str(task.get("body") or "").strip()
    return f"{title}\n\n{body}\n\n{FINISH}" if body else f"{title}\n\n{FINISH}"


def system_prompt(workspace: Path) -> str:
    """The role files written into the workspace (``workspaces.write_context``), as one text."""
    context = workspace / CONTEXT_DIR
    parts = []
    for name in ("AGENTS.md", "MEMORY.md"):
        path = context / name
        if path.is_file() and (text := path.read_text().strip()):
            parts.append(text)
    parts.append(f"The task's details are in {CONTEXT_DIR}/task.json. {FINISH}")
    return "\n\n".join(parts)


def resume_prompt(why: str, task: dict[str, Any], approvals: list[dict[str, Any]]) -> str:
    """What a resumed session is told (it has the task and its own work so far): the answer to its
    approval request (``why`` = ``approval``) or the reviewer's feedback on its result (``feedback``)."""
    if why == "feedback":
        feedback = str(task.get("feedback") or "").strip()
        return (
            "The reviewer sent your result back with this feedback:\n\n"
            f"{feedback}\n\nDo what the feedback asks, then finish again. {FINISH}"
        )
    lines = []
    for answer in approvals:
        line = f"- {answer.get('action')}: {answer.get('status')}"
        if answer.get("reason"):
            line += f" (reason: {answer['reason']})"
        if answer.get("edits"):
            line += f"; edits to apply: {json.dumps(answer['edits'], ensure_ascii=False)}"
        for comment in answer.get("comments") or []:
            text = comment.get("text") if isinstance(comment, dict) else comment
            if text:
                line += f"\n  comment: {text}"
        lines.append(line)
    answers = "\n".join(lines) or "- (no answer recorded: ask again with request_approval)"
    return (
        "Your approval request was answered:\n\n"
        f"{answers}\n\nAct on the answer: go on with what was approved (as edited), and do not do what "
        f"was denied. {FINISH}"
    )
