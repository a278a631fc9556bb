"""The settings page: backups (list, create, verify, download), the company's secrets as metadata
(set, rotate, delete: a value goes in, never comes out), integrations, API tokens (a new one shown
once), pricing overrides, and the loop budget and isolation mode (read-only: the settings file's).

Backups and API tokens belong to the home, not the company: the page shows them under the company it
is opened from because that is where the board operator looks for them.
"""

from __future__ import annotations

import re
from typing import Any
from uuid import UUID

from fastapi import APIRouter, Path, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from company_agents.api.schemas.companies import SLUG_PATTERN
from company_agents.dashboard.actions import required, see
from company_agents.dashboard.app import form_of, render
from company_agents.dashboard.pages import company_scope, db_of
from company_agents.errors import InvalidInput, NotFound

router = APIRouter()

Slug = Path(pattern=SLUG_PATTERN)
SecretName = Path(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
# A backup is named by its file in the backups directory, never by a path (nothing else is opened).
BACKUP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}\.tar\.gz$")
TOKEN_LEVELS = ("read", "write", "admin")


def master_key_of(request: Request) -> Any:
    key = getattr(request.app.state, "master_key", None)
    if key is None:
        from company_agents.master_key import load_master_key

        key = request.app.state.master_key = load_master_key(request.app.state.settings, create=False)
    return key


async def settings_context(request: Request, slug: str) -> dict[str, Any]:
    from company_agents import api_tokens, integrations, secrets_store
    from company_agents.backup.records import all_backups
    from company_agents.pricing.overrides import list_overrides

    db = db_of(request)
    settings = request.app.state.settings
    async with db.engine.connect() as conn:
        scope = await company_scope(conn, slug)
        cid = scope["company"]["id"]
        secrets = await secrets_store.list_secrets(conn, cid)
        links = await integrations.list_integrations(conn, cid)
        tokens = await api_tokens.list_tokens(conn, include_revoked=True)
        overrides = await list_overrides(conn, cid)
    # The backup records are read on a sync connection (backup.records): off the event loop.
    backups = await run_in_threadpool(all_backups, settings, db)
    return {
        **scope,
        "page": "settings",
        "secrets": secrets,
        "integrations": links,
        # Only what `token list` shows: the hash stays out of the template's reach.
        "tokens": [
            {
                k: t[k]
                for k in ("id", "name", "hint", "scopes", "env", "created_at", "expires_at", "revoked_at")
            }
            for t in tokens
        ],
        "overrides": overrides,
        "backups": backups,
        "loop_budget": settings.loop_budget_tool_calls,
        "isolation": settings.isolation,
        "levels": TOKEN_LEVELS,
    }


@router.get("/c/{slug}/settings", response_class=HTMLResponse)
async def settings_page(request: Request, slug: str = Slug) -> HTMLResponse:
    return render(request, "settings.html", **await settings_context(request, slug))


def back(slug: str) -> RedirectResponse:
    # No message rides in the URL (a link from elsewhere could make the page say anything): the
    # lists below show what changed.
    return see(f"/c/{slug}/settings")


@router.post("/c/{slug}/settings/backups")
async def create_backup(request: Request, slug: str = Slug) -> RedirectResponse:
    from company_agents.backup import create_backup as write_backup
    from company_agents.companies import get_company

    db = db_of(request)
    async with db.engine.connect() as conn:
        company = await get_company(conn, slug)
    # Never with the master key: a file that can decrypt the secrets is made on purpose, by the CLI.
    await run_in_threadpool(lambda: write_backup(request.app.state.settings, db))
    return back(company["slug"])


@router.post("/c/{slug}/settings/backups/verify", response_class=HTMLResponse)
async def verify_backup(request: Request, slug: str = Slug) -> HTMLResponse:
    from company_agents.backup import verify_backup as check

    form = await form_of(request)
    name = required(form, "name")
    info = await run_in_threadpool(check, backup_path(request, name))
    # The answer to the POST is the page with the verdict (a failed check is the error page).
    context = await settings_context(request, slug)
    return render(
        request, "settings.html", notice=f"{name} is intact: {', '.join(info.contents())}", **context
    )


def backup_path(request: Request, name: str) -> Any:
    """A backup of this home's directory by its file name (never a path: nothing else is opened)."""
    if not BACKUP_NAME.match(name):
        raise InvalidInput(f"not a backup's name: {name!r}", field="name")
    path = request.app.state.settings.backups_dir / name
    if not path.is_file():
        raise NotFound(f"no backup {name} in this home")
    return path


@router.get("/c/{slug}/settings/backups/{name}")
async def download_backup(request: Request, name: str, slug: str = Slug) -> FileResponse:
    from company_agents.backup.bundle import read_backup_info
    from company_agents.companies import get_company
    from company_agents.errors import Conflict

    async with db_of(request).engine.connect() as conn:
        await get_company(conn, slug)
    path = backup_path(request, name)
    info = await run_in_threadpool(read_backup_info, path)
    if info.includes_secrets:
        # That file decrypts every secret: it leaves the machine by hand, not by a browser link.
        raise Conflict(f"{name} holds the master key: copy it from {path.parent} on this machine")
    return FileResponse(path, media_type="application/gzip", filename=name)


@router.post("/c/{slug}/settings/secrets")
async def set_secret(request: Request, slug: str = Slug) -> RedirectResponse:
    from company_agents import secrets_store
    from company_agents.companies import get_company

    form = await form_of(request)
    key = master_key_of(request)
    async with db_of(request).engine.begin() as conn:
        company = await get_company(conn, slug)
        await secrets_store.create_secret(
            conn,
            key,
            company_id=company["id"],
            name=required(form, "name"),
            value=required(form, "value"),
            description=form.get("description", ""),
        )
    return back(company["slug"])


@router.post("/c/{slug}/settings/secrets/{name}/{move}")
async def change_secret(
    request: Request, move: str, slug: str = Slug, name: str = SecretName
) -> RedirectResponse:
    from company_agents import secrets_store
    from company_agents.companies import get_company

    if move not in ("rotate", "delete"):
        raise NotFound(f"no secret action {move}")
    form = await form_of(request)
    async with db_of(request).engine.begin() as conn:
        company = await get_company(conn, slug)
        if move == "rotate":
            await secrets_store.rotate_secret(
                conn,
                master_key_of(request),
                company_id=company["id"],
                name=name,
                value=required(form, "value"),
            )
        else:
            await secrets_store.delete_secret(conn, company_id=company["id"], name=name)
    return back(company["slug"])


@router.post("/c/{slug}/settings/tokens", response_class=HTMLResponse)
async def create_token(request: Request, slug: str = Slug) -> HTMLResponse:
    from company_agents import api_tokens

    form = await form_of(request)
    level = required(form, "level")
    if level not in TOKEN_LEVELS:
        raise InvalidInput(f"a token's level is one of {', '.join(TOKEN_LEVELS)}", field="level")
    async with db_of(request).engine.begin() as conn:
        scope = await company_scope(conn, slug)
        row, token = await api_tokens.create_token(
            conn,
            name=required(form, "name"),
            scopes=[level],
            # "This company only" restricts the token to the company the page is opened from.
            company_id=scope["company"]["id"] if form.get("company_only") else None,
        )
    # The one page that shows a secret: the token just made, once, in the answer to its own POST
    # (never stored, never in a URL, not cached: the guard sends no-store).
    return render(
        request, "token_created.html", page="settings", token=token, token_name=row["name"], **scope
    )


@router.post("/c/{slug}/settings/tokens/{token_id}/revoke")
async def revoke_token(request: Request, token_id: UUID, slug: str = Slug) -> RedirectResponse:
    from company_agents import api_tokens
    from company_agents.companies import get_company

    async with db_of(request).engine.begin() as conn:
        company = await get_company(conn, slug)
        await api_tokens.revoke_token(conn, token_id)
    return back(company["slug"])
