"""`company-agents watch`: the company's overview, full screen in the terminal, kept up to date.

Updates come from the company's event feed read straight from the database (``events.feed``, the
feed behind the API's SSE stream; no ``up`` or API token needed): every ``POLL_SECONDS`` the feed is
read after the last event seen, and any new event redraws the overview (``overview.company_overview``).
A full redraw also happens every ``--refresh`` seconds whatever the feed says (spend and expiries move
without events). Keys: ``q`` quit, ``i`` the inbox, ``↑``/``↓`` (or ``j``/``k``) select, ``a`` approve,
``r`` reject (deny) the selected approval. Without a terminal, or with ``--once``, one frame is printed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from company_agents.cli.settings import settings_from

if TYPE_CHECKING:
    import asyncio
    from uuid import UUID

    from company_agents.api.schemas.overview import OverviewPublic
    from company_agents.cli.watch_view import ViewState
    from company_agents.db.database import Database
    from company_agents.settings import Settings

POLL_SECONDS = 0.5
INBOX_LIMIT = 50
REJECT_REASON = "rejected in company-agents watch"
# What a key press arrives as (cbreak mode: arrows are escape sequences).
ARROWS = {"\x1b[A": "up", "\x1b[B": "down", "\x1bOA": "up", "\x1bOB": "down"}


def parse_keys(data: str) -> list[str]:
    """The keys in one read from the terminal: characters, and ``up``/``down`` for the arrows."""
    keys: list[str] = []
    i = 0
    while i < len(data):
        arrow = next((name for seq, name in ARROWS.items() if data.startswith(seq, i)), None)
        if arrow is not None:
            keys.append(arrow)
            i += 3
        elif data[i] == "\x1b":  # another escape sequence: skip it whole
            i += 1
            while i < len(data) and not data[i].isalpha() and data[i] != "~":
                i += 1
            i += 1
        else:
            keys.append(data[i])
            i += 1
    return keys


class Keys:
    """Key presses from a terminal in cbreak mode, as an asyncio queue (restored on ``close``)."""

    def __init__(self, fd: int, loop: asyncio.AbstractEventLoop) -> None:
        import asyncio
        import termios
        import tty

        self.fd, self.loop = fd, loop
        self.queue: asyncio.Queue[str] = asyncio.Queue()
        self.saved = termios.tcgetattr(fd)
        tty.setcbreak(fd)
        loop.add_reader(fd, self._ready)

    def _ready(self) -> None:
        import os

        try:
            data = os.read(self.fd, 64).decode(errors="ignore")
        except OSError:
            data = "q"  # the terminal went away: nothing left to watch on
        for key in parse_keys(data or "q"):
            self.queue.put_nowait(key)

    async def get(self, timeout: float) -> str | None:
        import asyncio

        try:
            return await asyncio.wait_for(self.queue.get(), timeout)
        except TimeoutError:
            return None

    def close(self) -> None:
        import termios

        self.loop.remove_reader(self.fd)
        termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)


async def _company_id(db: Database, ref: str | None) -> UUID:
    from company_agents import companies
    from company_agents.cli.errors import UsageError

    async with db.engine.connect() as conn:
        if ref is not None:
            company_id: UUID = (await companies.get_company(conn, ref))["id"]
            return company_id
        found = await companies.list_companies(conn)
    if len(found) != 1:
        names = ", ".join(c["slug"] for c in found) or "none yet"
        raise UsageError(f"name the company to watch with --company (companies: {names})")
    only: UUID = found[0]["id"]
    return only


async def _read(db: Database, company_id: UUID, state: ViewState) -> OverviewPublic:
    from company_agents import overview
    from company_agents.approvals.inbox import inbox

    async with db.engine.connect() as conn:
        out = await overview.company_overview(conn, company_id)
        if state.inbox_open:
            state.approvals = (await inbox(conn, company=str(company_id), limit=INBOX_LIMIT))["approvals"]
    return out


async def _decide(settings: Settings, db: Database, company_id: UUID, state: ViewState, status: str) -> None:
    from company_agents import audit
    from company_agents.approvals.store import decide
    from company_agents.audit.anchor import anchor_path
    from company_agents.audit.seal import seal_pass
    from company_agents.errors import CompanyAgentsError

    approval = state.selected_approval()
    if approval is None:
        state.message = "nothing selected: open the inbox with i"
        return
    reason = REJECT_REASON if status == "denied" else None
    try:
        async with db.engine.begin() as conn:
            await decide(
                conn,
                approval["id"],
                status=status,
                actor=audit.LOCAL_USER,
                reason=reason,
                company_id=company_id,
            )
    except CompanyAgentsError as exc:
        state.message = f"could not {'approve' if status == 'approved' else 'reject'}: {exc}"
        return
    state.message = f"{'approved' if status == 'approved' else 'rejected'}: {approval['action']}"
    if db.audit_key is not None:
        try:  # as after any CLI command: seal what it wrote when no `up` does (never fails the decision)
            await seal_pass(db.engine, db.audit_key, anchor=anchor_path(settings))
        except Exception:
            state.message += " (the audit seal waits for the next pass)"


async def _on_key(key: str, settings: Settings, db: Database, company_id: UUID, state: ViewState) -> None:
    if key == "i":
        state.inbox_open = not state.inbox_open
        state.message = ""
    elif key in ("up", "k"):
        state.select(-1)
    elif key in ("down", "j"):
        state.select(1)
    elif key in ("a", "r"):
        if not state.inbox_open:
            state.inbox_open = True
            state.message = "the inbox is open: select an approval, then a or r"
            return
        await _decide(settings, db, company_id, state, "approved" if key == "a" else "denied")


async def _watch(settings: Settings, db: Database, ref: str | None, once: bool, refresh: float) -> None:
    import asyncio
    import sys
    import time

    from rich.console import Console
    from rich.live import Live

    from company_agents.cli.watch_view import ViewState, frame
    from company_agents.events import feed

    company_id = await _company_id(db, ref)
    state = ViewState()
    console = Console()
    async with db.engine.connect() as conn:
        position = await feed.tail(conn)
    out = await _read(db, company_id, state)
    if once:
        console.print(frame(out, state, keys=False))
        return
    keys = Keys(sys.stdin.fileno(), asyncio.get_running_loop())
    try:
        with Live(frame(out, state), console=console, screen=True, auto_refresh=False) as live:
            due = time.monotonic() + refresh
            while True:
                key = await keys.get(POLL_SECONDS)
                dirty = key is not None
                if key == "q":
                    return
                if key is not None:
                    await _on_key(key, settings, db, company_id, state)
                async with db.engine.connect() as conn:
                    events = await feed.read_after(conn, company_id, position, limit=feed.MAX_PAGE)
                if events:
                    position, dirty = events[-1].position, True
                if dirty or time.monotonic() >= due:
                    out = await _read(db, company_id, state)
                    live.update(frame(out, state), refresh=True)
                    due = time.monotonic() + refresh
    finally:
        keys.close()


def watch(
    ctx: typer.Context,
    company: Annotated[
        str | None, typer.Option("--company", help="Company slug or id (default: the only company).")
    ] = None,
    once: Annotated[
        bool, typer.Option("--once", help="Print one frame and exit (no terminal needed).")
    ] = False,
    refresh: Annotated[
        float, typer.Option("--refresh", min=1.0, max=3600.0, help="Redraw at least this often (seconds).")
    ] = 5.0,
) -> None:
    """The company's overview, live in the terminal: tasks by state, running agents and their current
    step, cost against budget, the inbox; q quits, i opens the inbox, a/r approve or reject."""
    import asyncio
    import sys

    from company_agents.cli.context import opened

    settings = settings_from(ctx)
    interactive = sys.stdin.isatty() and sys.stdout.isatty()
    # The master key: an approval from here writes audit events, MAC'd like any other command's.
    with opened(settings, audit_key=not once and interactive) as db:

        async def main() -> None:
            try:
                await _watch(settings, db, company, once or not interactive, refresh)
            finally:
                await db.dispose()

        try:
            asyncio.run(main())
        except KeyboardInterrupt:
            pass
