"""What an agent CLI is told: the task as its prompt, the agent's role files as its system prompt."""

from __future__ import annotations

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
