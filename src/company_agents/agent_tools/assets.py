"""``upload_asset``: a file of the run's workspace becomes a company asset, in
``<home>/data/storage/companies/<company id>/assets/<asset id>/<file name>``.

The agent is untrusted and owns its workspace, so the path is opened one component at a time from the
workspace directory with ``O_NOFOLLOW`` (``openat``): a symlink anywhere on the way, a ``..``, an
absolute path, something that is not a regular file, or a file with other hard links is refused, and
swapping a component for a symlink between a check and the open gains nothing because there is no
separate check. The copy reads from that one descriptor and stops past ``asset_max_bytes``, so a file
that grows while it is read is refused too.

The copy lands under a temporary name; it becomes the asset only if the fenced write that records it
(the ``asset.uploaded`` audit event) succeeds, so a zombie leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import os
import shutil
import stat
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, LiteralString

from sqlalchemy.ext.asyncio import AsyncConnection

from company_agents import audit, leases
from company_agents.agent_tools import calls
from company_agents.agent_tools.fencing import IMPLIED, Fence, ToolEnv, fenced
from company_agents.db import driver
from company_agents.errors import InvalidInput, PayloadTooLarge
from company_agents.task_states import ACTIVE_SQL

CHUNK = 1024 * 1024

# The run's workspace while it holds its task; FOR SHARE OF the lease: the reaper (or the run's own end)
# waits until the asset is recorded. Lock order: the lease row only.
WORKSPACE_SQL: LiteralString = f"""
SELECT r.workspace_path
FROM leases l
JOIN tasks t ON t.id = l.task_id AND t.fencing_token = %(fencing_token)s AND t.status IN {ACTIVE_SQL}
JOIN runs r ON r.id = l.run_id
WHERE l.task_id = %(task_id)s AND l.fencing_token = %(fencing_token)s AND l.token_hash = %(token_hash)s
FOR SHARE OF l
"""


def _refuse(message: str) -> InvalidInput:
    return InvalidInput(f"path: {message}", field="path")


def _open_error(exc: OSError, part: str, dir_fd: int) -> InvalidInput:
    reasons = {
        errno.ENOENT: "does not exist in your workspace",
        errno.ELOOP: "is a symlink (refused)",
        errno.ENOTDIR: "is not a directory",
    }
    reason = reasons.get(exc.errno or 0, "cannot be read")
    if exc.errno == errno.ENOTDIR:
        # O_DIRECTORY | O_NOFOLLOW on a symlink to a directory says ENOTDIR: name the real reason.
        with contextlib.suppress(OSError):
            if stat.S_ISLNK(os.stat(part, dir_fd=dir_fd, follow_symlinks=False).st_mode):
                reason = reasons[errno.ELOOP]
    return _refuse(f"{part!r} {reason}")


def path_parts(path: str) -> list[str]:
    """The components of a workspace-relative path; ``InvalidInput`` for anything that could leave it."""
    if "\x00" in path:
        raise _refuse("contains a NUL byte")
    if path.startswith("/"):
        raise _refuse("must be relative to your workspace")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if not parts:
        raise _refuse("names no file")
    if ".." in parts:
        raise _refuse("must not contain '..'")
    return parts


def open_in_workspace(workspace: Path, path: str) -> int:
    """A read-only descriptor of the regular file ``path`` inside ``workspace``, never following a
    symlink; the caller closes it."""
    parts = path_parts(path)
    flags_dir = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(workspace, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in parts[:-1]:
            try:
                inner = os.open(part, flags_dir, dir_fd=fd)
            except OSError as exc:
                raise _open_error(exc, part, fd) from None
            os.close(fd)
            fd = inner
        try:
            # O_NONBLOCK: a FIFO planted in the workspace must not hang the tool endpoint.
            file_fd = os.open(
                parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=fd
            )
        except OSError as exc:
            raise _open_error(exc, parts[-1], fd) from None
    finally:
        os.close(fd)
    info = os.fstat(file_fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(file_fd)
        raise _refuse("not a regular file")
    if info.st_nlink > 1:
        os.close(file_fd)
        raise _refuse("a file with other hard links is refused; copy it first")
    return file_fd


@dataclass(frozen=True)
class Copied:
    staged: Path
    final: Path
    size: int
    sha256: str


def copy_out(src_fd: int, asset_dir: Path, name: str, max_bytes: int) -> Copied:
    """Copy the open file into ``asset_dir`` under a temporary name; ``PayloadTooLarge`` past
    ``max_bytes`` (and nothing kept)."""
    too_large = PayloadTooLarge(f"the file is larger than {max_bytes} bytes", maxBytes=max_bytes)
    if os.fstat(src_fd).st_size > max_bytes:
        raise too_large
    asset_dir.mkdir(parents=True, mode=0o750)
    staged = asset_dir / f".{name}.partial"
    digest = hashlib.sha256()
    size = 0
    try:
        out = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o640)
        try:
            os.set_blocking(src_fd, True)
            while chunk := os.read(src_fd, CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise too_large
                digest.update(chunk)
                os.write(out, chunk)
        finally:
            os.close(out)
    except BaseException:
        shutil.rmtree(asset_dir, ignore_errors=True)
        raise
    return Copied(staged=staged, final=asset_dir / name, size=size, sha256=digest.hexdigest())


async def upload_asset(
    env: ToolEnv, token: str, call: calls.UploadAsset, fence: Fence = IMPLIED
) -> dict[str, Any]:
    """Copy a workspace file into the company's assets, recorded with an ``asset.uploaded`` event."""
    parts = path_parts(call.path)
    asset_id = uuid.uuid4()

    async def workspace_of(conn: AsyncConnection, ident: leases.RunIdentity, ft: int) -> tuple[Any, Path]:
        row = await driver.one(
            conn,
            WORKSPACE_SQL,
            {"task_id": ident.task_id, "fencing_token": ft, "token_hash": ident.token_hash},
        )
        if row is None:
            raise leases.stale_error(ident, ft, "upload_asset")
        if not row["workspace_path"]:
            raise InvalidInput("this run has no workspace", field="path")
        return ident, Path(row["workspace_path"])

    ident, workspace = await fenced(env, "upload_asset", token, fence, workspace_of)
    asset_dir = env.settings.storage_dir / "companies" / str(ident.company_id) / "assets" / str(asset_id)

    def copy() -> Copied:
        src = open_in_workspace(workspace, call.path)
        try:
            return copy_out(src, asset_dir, parts[-1], env.settings.asset_max_bytes)
        finally:
            os.close(src)

    copied = await asyncio.to_thread(copy)
    stored = copied.final.relative_to(env.settings.storage_dir).as_posix()

    async def record(conn: AsyncConnection, ident: leases.RunIdentity, ft: int) -> None:
        await workspace_of(conn, ident, ft)  # still the task's run: the lease is held until commit
        await audit.record(
            conn,
            actor=f"agent:{ident.agent_id}",
            action="asset.uploaded",
            subject_type="asset",
            subject_id=asset_id,
            company_id=ident.company_id,
            payload={
                "taskId": str(ident.task_id),
                "runId": str(ident.run_id),
                "path": "/".join(parts),
                "storedPath": stored,
                "bytes": copied.size,
                "sha256": copied.sha256,
            },
        )

    try:
        await fenced(env, "upload_asset", token, fence, record)
        copied.staged.rename(copied.final)
    except BaseException:
        shutil.rmtree(asset_dir, ignore_errors=True)
        raise
    return {
        "assetId": str(asset_id),
        "name": parts[-1],
        "path": stored,
        "bytes": copied.size,
        "sha256": copied.sha256,
    }
