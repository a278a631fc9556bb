"""``/v1/backups`` (admin, not restricted to one company: a backup holds every company): list,
create and verify, as ``backup list|create|verify`` do.

Creating is synchronous: the request answers 201 when the file is written and recorded. A backup is
a snapshot copy of a local database (seconds for most homes) and its result is the file itself, so a
202 and a status resource would add a job table for little; one app makes one backup at a time (409
while one runs) and the work runs on a worker thread, so the API keeps serving meanwhile. Backups that
carry the master key (``--include-secrets``) are made only by the CLI, on the machine that holds it.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from starlette.concurrency import run_in_threadpool

from company_agents.api.deps import Db, Principal, get_settings, require, require_unrestricted
from company_agents.api.middleware import request_id_of
from company_agents.api.schemas.backups import BACKUP_NAME_PATTERN, Backup, BackupVerification
from company_agents.api.schemas.common import Envelope, ListEnvelope, error_responses, one, page

router = APIRouter(tags=["backups"])

Name = Annotated[str, Path(pattern=BACKUP_NAME_PATTERN, description="The backup's file name.")]


async def _admin(principal: Annotated[Principal, Depends(require("admin"))]) -> Principal:
    require_unrestricted(principal)
    return principal


def _lock(request: Request) -> asyncio.Lock:
    """This app's backup lock (made on first use: the app owns it, nothing global does)."""
    lock: asyncio.Lock | None = getattr(request.app.state, "backup_lock", None)
    if lock is None:
        lock = request.app.state.backup_lock = asyncio.Lock()
    return lock


@router.get(
    "/backups",
    operation_id="listBackups",
    response_model=ListEnvelope[Backup],
    responses=error_responses(403),
    dependencies=[Depends(_admin)],
)
async def list_backups(request: Request, db: Db) -> Any:
    """Every backup of this database, on any host, oldest first (and unrecorded files of this home)."""
    from company_agents.backup.records import all_backups

    found = await run_in_threadpool(all_backups, get_settings(request), db)
    return page(request_id_of(request), [Backup.of(b.to_dict()) for b in found], None)


@router.post(
    "/backups",
    operation_id="createBackup",
    status_code=201,
    response_model=Envelope[Backup],
    responses=error_responses(403, 409),
    dependencies=[Depends(_admin)],
)
async def create_backup(request: Request, db: Db) -> Any:
    """Back up the database, run workspaces and audit trail (without the master key); answers when
    the file is written."""
    from company_agents.backup import create_backup
    from company_agents.backup.records import BackupRecord, this_host
    from company_agents.errors import Conflict

    lock = _lock(request)
    if lock.locked():
        raise Conflict("a backup is being made; list the backups when it is done")
    settings = get_settings(request)
    async with lock:
        info = await run_in_threadpool(create_backup, settings, db)
    record = BackupRecord(
        host=this_host(),
        path=info.path,
        created_at=info.created_at,
        size=info.size,
        contents=info.contents(),
        includes_secrets=info.includes_secrets,
        scheduled=False,
        schema_revision=str(info.raw["database"]["schema_revision"]),
        recorded=True,
        here=True,
        info=info,
    )
    return one(request_id_of(request), Backup.of(record.to_dict()))


@router.post(
    "/backups/{name}/verify",
    operation_id="verifyBackup",
    response_model=Envelope[BackupVerification],
    responses=error_responses(403, 404),
    dependencies=[Depends(_admin)],
)
async def verify_backup(request: Request, name: Name) -> Any:
    """Check one of this home's backups end to end (checksums, every table's rows); writes nothing."""
    from company_agents.backup import read_backup_info, verify_backup
    from company_agents.errors import ArchiveError, NotFound

    path = get_settings(request).backups_dir / name
    if not path.is_file():
        raise NotFound(f"no backup {name} in this home's backups directory", backup=name)
    try:
        info = await run_in_threadpool(verify_backup, path)
    except ArchiveError as exc:
        # A damaged backup is a finding, not a bad request: the answer says what is wrong with it.
        contents: list[str] = []
        try:
            contents = read_backup_info(path).contents()
        except ArchiveError:
            pass
        result = {"name": name, "ok": False, "problem": str(exc), "contents": contents}
        return one(request_id_of(request), BackupVerification.of(result))
    result = {"name": name, "ok": True, "problem": None, "contents": info.contents()}
    return one(request_id_of(request), BackupVerification.of(result))
