"""The example writer agent: real, checkable work with no network and no API key.

Run by the process adapter as ``python -m company_agents.examples.writer_agent`` with its working
directory set to the run workspace. It speaks the json-lines protocol of docs/agent-protocol.md:

1. reads ``.company-agents/task.json``;
2. writes one file into the workspace — the file the task names — and commits it with git;
3. reports ``progress``, a small ``cost`` and ``complete`` with ``{files, commit, summary, content}``.

The cost is for ``demo-offline-writer``, a pretend model: no model is called and no money is spent. Its
token counts are the sizes of what it read and wrote (about four characters a token), and ``demo``
prices that model with a company override, so ``cost show --company demo`` has something to show.

How a task tells it what to do (leading ``key: value`` lines of the body are directives; the rest of the
body is the content):

- ``file: docs/hello.md`` — the path to write (relative to the workspace). Without it the path is a slug
  of the title plus ``.md`` (``Write the README`` → ``write-the-readme.md``).
- ``summarise: some/dir`` (or a title like ``Summarise the files in some/dir``) — instead of writing the
  body, write a summary of the files under that directory (default path ``SUMMARY.md``).
- ``delay: 5`` — wait this many seconds before writing (to watch a run live, or to test shutdown).
- ``fail: reason`` — report ``failed`` with that reason (to see the retry policy at work).

Reviewer feedback (``task.json`` ``feedback``) is honoured by appending a "Revision" note to the file.
A ``shutdown`` event on stdin stops the agent at its next step: it exits 0 without completing.
Standard library only: it runs in the agent's clean environment with the orchestrator's interpreter.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

TASK_FILE = Path(".company-agents") / "task.json"
DIRECTIVES = ("file", "summarise", "summarize", "delay", "fail")
# The agent may read these but never writes into them: they belong to git and to the orchestrator.
PROTECTED_DIRS = (".git", ".run", ".company-agents")
GIT_NAME = "Company Agents writer"
GIT_EMAIL = "writer-agent@company-agents.invalid"
CONTENT_PREVIEW_CHARS = 2000
SUMMARY_MAX_FILES = 200
# A pretend model the demo company prices with an override (``company_agents.demo``): no money is spent.
DEMO_MODEL = "demo-offline-writer"
SUMMARISE_TITLE = re.compile(r"^\s*summari[sz]e\s+(?:all\s+)?(?:the\s+)?files\s+(?:in|under)\s+(\S+)", re.I)


class AgentFailure(Exception):
    """The task cannot be done; the message is the ``failed`` reason."""


class ShutdownRequested(Exception):
    """The orchestrator asked the agent to stop."""


class Protocol:
    """Events to the orchestrator on stdout, one JSON object per line; ``shutdown`` from it on stdin."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._lock = threading.Lock()
        self.shutdown = threading.Event()
        self.shutdown_reason = ""

    def emit(self, event: dict[str, Any]) -> None:
        line = json.dumps(event, ensure_ascii=False, default=str)
        with self._lock:  # the reader thread never writes, but keep lines whole whatever happens
            try:
                self._out.write(line + "\n")
                self._out.flush()
            except (BrokenPipeError, ValueError):  # the orchestrator has gone: nobody to tell
                pass

    def progress(self, message: str, *, step: str, percent: int, data: dict[str, Any] | None = None) -> None:
        event: dict[str, Any] = {"type": "progress", "message": message, "step": step, "percent": percent}
        if data:
            event["data"] = data
        self.emit(event)

    def listen(self, stdin: TextIO) -> None:
        """Watch stdin for ``shutdown`` on a daemon thread (it never keeps the process alive)."""
        threading.Thread(target=self._read, args=(stdin,), name="stdin-reader", daemon=True).start()

    def _read(self, stdin: TextIO) -> None:
        try:
            for line in stdin:
                try:
                    event = json.loads(line)
                except ValueError:
                    continue  # not for us: the protocol only defines JSON objects
                if isinstance(event, dict) and event.get("type") == "shutdown":
                    self.shutdown_reason = str(event.get("reason") or "shutdown")
                    self.shutdown.set()
                    return
        except (OSError, ValueError):
            return  # stdin closed: that is not a shutdown request (e.g. run with </dev/null)

    def checkpoint(self) -> None:
        """Raise ``ShutdownRequested`` if the orchestrator asked us to stop."""
        if self.shutdown.is_set():
            raise ShutdownRequested(self.shutdown_reason)

    def sleep(self, seconds: float) -> None:
        """Wait, waking at once on shutdown."""
        if seconds > 0 and self.shutdown.wait(seconds):
            raise ShutdownRequested(self.shutdown_reason)


@dataclass(frozen=True)
class Brief:
    """What the task body asks for: the directives and the content."""

    path: str | None
    summarise: str | None
    delay: float
    fail: str | None
    content: str


def parse_brief(title: str, body: str) -> Brief:
    """Split the body into leading ``key: value`` directives and the content after them."""
    found: dict[str, str] = {}
    lines = body.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index].strip()
        if not line and not found:
            index += 1
            continue
        key, sep, value = line.partition(":")
        if not sep or key.strip().lower() not in DIRECTIVES:
            break
        found[key.strip().lower()] = value.strip()
        index += 1
    content = "\n".join(lines[index:]).strip("\n")
    summarise = found.get("summarise") or found.get("summarize")
    if summarise is None:
        match = SUMMARISE_TITLE.match(title)
        if match:
            summarise = match.group(1).rstrip(".,;:!?\"'`").strip("\"'`")
    try:
        delay = float(found.get("delay", "0") or 0)
    except ValueError:
        raise AgentFailure(f"delay must be a number of seconds, not {found['delay']!r}") from None
    return Brief(
        path=found.get("file") or None,
        summarise=summarise or None,
        delay=max(0.0, delay),
        fail=found.get("fail") or None,
        content=content,
    )


def slugify(title: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:60].strip("-")
    return slug or "output"


def inside(workspace: Path, relative: str, *, for_writing: bool) -> Path:
    """``relative`` resolved under the workspace; refuse escapes (and, for writing, protected dirs)."""
    if not relative or Path(relative).is_absolute():
        raise AgentFailure(f"the path {relative!r} must be relative to the workspace")
    root = workspace.resolve()
    target = (root / relative).resolve()
    if target != root and root not in target.parents:
        raise AgentFailure(f"the path {relative!r} leaves the workspace")
    parts = target.relative_to(root).parts
    if for_writing and (not parts or parts[0] in PROTECTED_DIRS):
        raise AgentFailure(f"the agent may not write {relative!r} ({', '.join(PROTECTED_DIRS)} are reserved)")
    return target


def render_document(title: str, content: str, path: str) -> str:
    """The file's text: the content, under a title heading when it is Markdown without one."""
    text = content.strip("\n")
    if path.endswith((".md", ".markdown")) and not text.lstrip().startswith("#"):
        text = f"# {title}\n\n{text}" if text else f"# {title}"
    return text + "\n"


def _first_line(data: bytes) -> str:
    for raw in data.decode("utf-8", errors="replace").splitlines():
        line = raw.strip().lstrip("#").strip()
        if any(ch.isalnum() for ch in line):  # skip rules, fences and lone brackets
            return line[:100]
    return "(empty)"


def summarise_directory(workspace: Path, target: str) -> str:
    """A Markdown summary of the files under ``target``: size, lines and first line of each."""
    root = inside(workspace, target, for_writing=False)
    if not root.is_dir():
        raise AgentFailure(f"there is no directory {target!r} in the workspace to summarise")
    base = workspace.resolve()
    files = sorted(p for p in root.rglob("*") if p.is_file() and ".git" not in p.relative_to(base).parts[:1])
    lines = [f"# Summary of `{target}`", ""]
    if not files:
        lines.append("The directory holds no files.")
    total = 0
    for path in files[:SUMMARY_MAX_FILES]:
        data = path.read_bytes()
        total += len(data)
        rel = path.relative_to(base).as_posix()
        if b"\0" in data[:8192]:
            lines.append(f"- `{rel}` — {len(data)} bytes, binary")
        else:
            count = data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)
            noun = "line" if count == 1 else "lines"
            lines.append(f"- `{rel}` — {count} {noun}, {len(data)} bytes: {_first_line(data)}")
    if len(files) > SUMMARY_MAX_FILES:
        lines.append(f"- … and {len(files) - SUMMARY_MAX_FILES} more files")
    counted = f" (sizes of the first {SUMMARY_MAX_FILES})" if len(files) > SUMMARY_MAX_FILES else ""
    lines += ["", f"{len(files)} files, {total} bytes in all{counted}."]
    return "\n".join(lines) + "\n"


def revision_note(feedback: str, attempt: int) -> str:
    quoted = "\n".join(f"> {line}" if line else ">" for line in feedback.strip().splitlines())
    return f"\n## Revision (attempt {attempt})\n\nReviewer feedback addressed:\n\n{quoted}\n"


def _git(git: str, workspace: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [git, *args],
        cwd=workspace,
        stdin=subprocess.DEVNULL,  # stdin is the orchestrator's channel: never let a child read it
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def git_commit(workspace: Path, files: Sequence[str], message: str) -> str | None:
    """Commit ``files``; the commit sha, or None when git is not installed."""
    git = shutil.which("git")
    if git is None:
        return None
    if not (workspace / ".git").exists():
        init = _git(git, workspace, "init", "-q")
        if init.returncode != 0:
            raise AgentFailure(f"git init failed: {init.stderr.strip()}")
    added = _git(git, workspace, "add", "--", *files)
    if added.returncode != 0:
        raise AgentFailure(f"git add failed: {added.stderr.strip()}")
    if _git(git, workspace, "diff", "--cached", "--quiet").returncode == 0:
        head = _git(git, workspace, "rev-parse", "--verify", "-q", "HEAD")  # nothing new to commit
        return head.stdout.strip() or None
    identity = ("-c", f"user.name={GIT_NAME}", "-c", f"user.email={GIT_EMAIL}", "-c", "commit.gpgsign=false")
    commit = _git(git, workspace, *identity, "commit", "-q", "--no-verify", "-m", message)
    if commit.returncode != 0:
        raise AgentFailure(f"git commit failed: {(commit.stderr or commit.stdout).strip()}")
    return _git(git, workspace, "rev-parse", "HEAD").stdout.strip()


def load_task(workspace: Path) -> dict[str, Any]:
    path = workspace / TASK_FILE
    try:
        task = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AgentFailure(f"no task file at {path}") from None
    except ValueError as exc:
        raise AgentFailure(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(task, dict) or not str(task.get("title") or "").strip():
        raise AgentFailure(f"{path} has no title")
    return task


def do_task(workspace: Path, proto: Protocol) -> dict[str, Any]:
    """Do the work; return the ``complete`` event. Raises ``AgentFailure`` or ``ShutdownRequested``."""
    task = load_task(workspace)
    title = str(task["title"]).strip()
    brief = parse_brief(title, str(task.get("body") or ""))
    proto.progress(f"read the task: {title}", step="read_task", percent=10)
    proto.sleep(brief.delay)
    proto.checkpoint()
    if brief.fail:
        raise AgentFailure(brief.fail)

    if brief.summarise:
        path = brief.path or "SUMMARY.md"
        text = summarise_directory(workspace, brief.summarise)
        what = f"summarised the files in {brief.summarise}"
    else:
        path = brief.path or f"{slugify(title)}.md"
        text = render_document(title, brief.content, path)
        what = "wrote it from the task body" if brief.content else "wrote it (the task gave no content)"
    feedback = str(task.get("feedback") or "").strip()
    if feedback:
        text += revision_note(feedback, int(task.get("attempt") or 1))
        what += ", with a revision note for the reviewer's feedback"
    target = inside(workspace, path, for_writing=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    rel = target.relative_to(workspace.resolve()).as_posix()
    proto.progress(f"wrote {rel}", step="write", percent=60, data={"path": rel, "bytes": len(text.encode())})
    proto.checkpoint()

    commit = git_commit(workspace, [rel], f"{title}\n\nWritten by the example writer agent.")
    if commit:
        proto.progress(
            f"committed {rel} as {commit[:12]}", step="commit", percent=90, data={"commit": commit}
        )
    else:
        proto.progress(
            "git is not installed: the file is written but not committed", step="commit", percent=90
        )
    proto.emit(
        {
            "type": "cost",
            "id": f"write-{rel}",
            "model": DEMO_MODEL,
            "provider": "company-agents-demo",
            "inputTokens": 1 + len(json.dumps(task)) // 4,
            "outputTokens": 1 + len(text) // 4,
            "note": "demo: an offline pretend model; no money is spent",
        }
    )
    proto.checkpoint()
    summary = f"{rel}: {what}" + (f"; commit {commit[:12]}" if commit else "; not committed (no git)")
    return {
        "type": "complete",
        "output": {
            "files": [rel],
            "commit": commit,
            "summary": summary,
            "content": text[:CONTENT_PREVIEW_CHARS],
        },
        "reasoning": f"Task {title!r}: {what}.",
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run one task in the workspace; 0 after ``complete`` (or a requested shutdown), 1 after ``failed``."""
    parser = argparse.ArgumentParser(description="The example writer agent (json-lines protocol).")
    parser.add_argument(
        "--workspace",
        type=Path,
        default=None,
        help="The run workspace (default: $CA_WORKSPACE, else the current directory).",
    )
    args = parser.parse_args(argv)
    workspace = Path(args.workspace or os.environ.get("CA_WORKSPACE") or Path.cwd())
    proto = Protocol(sys.stdout)
    proto.listen(sys.stdin)
    try:
        proto.emit(do_task(workspace, proto))
    except ShutdownRequested as stop:
        sys.stderr.write(f"writer agent: stopping on request ({stop}); no output\n")
        return 0
    except AgentFailure as exc:
        proto.emit({"type": "failed", "reason": str(exc)})
        return 1
    except Exception as exc:  # the protocol wants a reason, not a traceback on stdout
        proto.emit({"type": "failed", "reason": f"{type(exc).__name__}: {exc}"})
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
