"""`company-agents logs [--follow]`: the orchestrator's log, ``<home>/logs/orchestrator.log``.

Reads the file only (no database), so it works while the database is down, which is when it is needed.
A rotation at midnight replaces the file: ``--follow`` notices (a new inode, or a shorter file) and
goes on from the top of the new one.
"""

from __future__ import annotations

import sys
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, BinaryIO

import typer

from company_agents.cli.settings import settings_from
from company_agents.errors import NotFound

POLL_SECONDS = 0.5
CHUNK_BYTES = 64 * 1024
LOG_NAME = "orchestrator"


def tail_lines(path: Path, count: int) -> tuple[bytes, int]:
    """The last ``count`` lines of ``path`` (all of it for 0) and the offset they end at."""
    with path.open("rb") as fh:
        if count <= 0:
            data = fh.read()
        else:
            data = b"".join(deque(fh, maxlen=count))
        return data, fh.tell()


def follow(
    path: Path,
    position: int,
    out: BinaryIO,
    *,
    poll_seconds: float = POLL_SECONDS,
    stop: Callable[[], bool] = lambda: False,
) -> None:
    """Print what ``path`` gains, across rotations, until interrupted (or ``stop()`` says so)."""
    inode = path.stat().st_ino
    while not stop():
        try:
            stat = path.stat()
        except FileNotFoundError:  # between the rotation's rename and the next write
            time.sleep(poll_seconds)
            continue
        if stat.st_ino != inode or stat.st_size < position:
            inode, position = stat.st_ino, 0
        if stat.st_size > position:
            with path.open("rb") as fh:
                fh.seek(position)
                while chunk := fh.read(CHUNK_BYTES):
                    out.write(chunk)
                    position += len(chunk)
            out.flush()
        time.sleep(poll_seconds)


def logs(
    ctx: typer.Context,
    follow_: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines (Ctrl-C stops).")
    ] = False,
    lines: Annotated[
        int, typer.Option("--lines", "-n", help="Print the last N lines first; 0 for all.", min=0)
    ] = 100,
) -> None:
    """Print the orchestrator's log (rotated daily into <home>/logs/orchestrator.log.<date>.gz)."""
    settings = settings_from(ctx)
    path = settings.logs_dir / f"{LOG_NAME}.log"
    if not path.is_file():
        raise NotFound(f"no log yet at {path}: `company-agents up` writes it", path=str(path))
    data, position = tail_lines(path, lines)
    out = sys.stdout.buffer
    out.write(data)
    out.flush()
    if follow_:
        follow(path, position, out)
