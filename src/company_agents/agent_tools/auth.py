"""Who an agent tool call acts for: a run (lease token) or an agent (identity token).

A lease token speaks for one run of one task and implies that run's fencing token; it outlives the
lease, so a zombie still authenticates and is then refused by the fenced write (``stale_fencing_token``).
An identity token speaks for its agent only, and only the tools that allow it (memory) take one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from company_agents import leases
from company_agents.agents import get_agent
from company_agents.errors import Unauthorized
from company_agents.identity import authenticate_agent
from company_agents.tokens import LEASE_TOKEN_PREFIX


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header; ``Unauthorized`` without one."""
    token = (authorization or "").removeprefix("Bearer ").strip()
    if not authorization or not authorization.startswith("Bearer ") or not token:
        raise Unauthorized("send Authorization: Bearer <token>")
    return token


def is_lease_token(token: str) -> bool:
    return token.startswith(LEASE_TOKEN_PREFIX)


async def authenticate_run(conn: AsyncConnection, token: str) -> leases.RunIdentity:
    """The run a lease token belongs to; ``Unauthorized`` for anything else (an identity token too)."""
    return await leases.authenticate(conn, token)


@dataclass(frozen=True)
class AgentPrincipal:
    """The agent a call acts as, with the run it came through (None for an identity token)."""

    agent: dict[str, Any]
    run: leases.RunIdentity | None

    @property
    def actor(self) -> str:
        return f"agent:{self.agent['id']}"

    @property
    def task_ids(self) -> list[Any]:
        return [self.run.task_id] if self.run is not None else []


async def authenticate_agent_or_run(conn: AsyncConnection, token: str) -> AgentPrincipal:
    """A lease token (acting as its run's agent) or an agent identity token."""
    if is_lease_token(token):
        ident = await leases.authenticate(conn, token)
        agent = await get_agent(conn, ident.company_id, ident.agent_id)
        return AgentPrincipal(agent=agent, run=ident)
    return AgentPrincipal(agent=await authenticate_agent(conn, token), run=None)


async def check_bearer(conn: AsyncConnection, token: str) -> None:
    """``Unauthorized`` unless the token is a known lease token or a live agent identity token (the
    MCP server's per-request check; each tool then checks what the token may do)."""
    if is_lease_token(token):
        await leases.authenticate(conn, token)
    else:
        await authenticate_agent(conn, token)
