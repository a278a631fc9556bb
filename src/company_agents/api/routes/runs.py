"""``/v1/companies/{company}/runs`` and ``/v1/runs/{run}``: list (keyset pages), show, checkpoints, log."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import FileResponse, StreamingResponse

from company_agents.api.deps import (
    CompanyRef,
    CursorQuery,
    Db,
    LimitQuery,
    Principal,
    Reader,
    check_company,
    company_for,
    get_settings,
)
from company_agents.api.middleware import request_id_of
from company_agents.api.routes.tasks import ID_PATTERN
from company_agents.api.schemas.common import (
    DEFAULT_LIMIT,
    Envelope,
    ListEnvelope,
    decode_cursor,
    encode_cursor,
    error_responses,
    one,
    page,
)
from company_agents.api.schemas.tasks import Checkpoint, Run
from company_agents.errors import NotFound
from company_agents.settings import Settings

router = APIRouter(tags=["runs"])

RunRef = Annotated[str, Path(pattern=ID_PATTERN, description="The run's id.")]
RunStatus = Literal["running", "succeeded", "failed", "cancelled", "handed_off"]


@router.get(
    "/companies/{company}/runs",
    operation_id="listRuns",
    response_model=ListEnvelope[Run],
    responses=error_responses(403, 404),
)
async def list_runs(
    request: Request,
    company: CompanyRef,
    principal: Reader,
    db: Db,
    status: Annotated[list[RunStatus] | None, Query(description="One or more run statuses.")] = None,
    limit: LimitQuery = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
) -> Any:
    """The company's runs, newest first, a keyset page at a time."""
    from company_agents import pagination, runs

    before = decode_cursor(cursor)
    async with db.engine.connect() as conn:
        current = await company_for(conn, principal, company)
        rows = await runs.list_runs(
            conn,
            company=str(current["id"]),
            status=list(status) if status else None,
            limit=limit,
            page=True,
            before=before,
        )
    items, last = pagination.split(rows, limit, "started_at")
    next_cursor = encode_cursor(*last) if last else None
    return page(request_id_of(request), [Run.of(r) for r in items], next_cursor)


async def _visible_run(conn: Any, principal: Principal, ref: str) -> dict[str, Any]:
    from company_agents import runs

    return check_company(principal, await runs.get_run(conn, ref), "run", ref)


@router.get(
    "/runs/{run}", operation_id="getRun", response_model=Envelope[Run], responses=error_responses(403, 404)
)
async def get_run(request: Request, run: RunRef, principal: Reader, db: Db) -> Any:
    """One run (attempt) of a task."""
    async with db.engine.connect() as conn:
        row = await _visible_run(conn, principal, run)
    return one(request_id_of(request), Run.of(row))


@router.get(
    "/runs/{run}/checkpoints",
    operation_id="listRunCheckpoints",
    response_model=ListEnvelope[Checkpoint],
    responses=error_responses(403, 404),
)
async def list_checkpoints(request: Request, run: RunRef, principal: Reader, db: Db) -> Any:
    """The run's progress checkpoints in the order they were written."""
    from company_agents import runs

    async with db.engine.connect() as conn:
        row = await _visible_run(conn, principal, run)
        rows = await runs.list_checkpoints(conn, row["id"])
    return page(request_id_of(request), [Checkpoint.of(r) for r in rows], None)


@router.get(
    "/runs/{run}/log",
    operation_id="getRunLog",
    response_class=FileResponse,
    responses={
        200: {"content": {"text/plain": {}}, "description": "The log (streamed with follow)"},
        **error_responses(403, 404),
    },
)
async def get_run_log(
    run: RunRef,
    principal: Reader,
    db: Db,
    settings: Annotated[Settings, Depends(get_settings)],
    follow: Annotated[
        bool, Query(description="Keep the response open and stream new lines until the run has ended.")
    ] = False,
) -> Any:
    """The run's log as plain text (stdout, stderr and the orchestrator's notes); with ``follow``, the
    log so far and then each line as it is written, ending when the run has ended (as ``run logs -f``)."""
    from company_agents import run_logs
    from company_agents.workspaces import run_log_path

    async with db.engine.connect() as conn:
        row = await _visible_run(conn, principal, run)
    path = run_log_path(settings, row["id"])
    if follow:
        return StreamingResponse(
            run_logs.tail(db.engine, row["id"], path),
            media_type="text/plain; charset=utf-8",
            # Proxies must pass each line on as it comes, not hold the response back.
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    if not path.is_file():
        raise NotFound(f"run {row['id']} has no log yet", run=str(row["id"]))
    return FileResponse(path, media_type="text/plain; charset=utf-8")
