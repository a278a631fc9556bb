"""Agent identity tokens: one per agent, shown once, stored only as a SHA-256 hash.

An identity token acts as its agent and nothing else: memory in the agent's own scopes, never another
agent's, never another company's. Work on a task goes through the run's lease token instead.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from company_agents import audit
from company_agents.db.schema import agents
from company_agents.errors import Unauthorized
from company_agents.tokens import AGENT_TOKEN_PREFIX, hash_token, new_agent_token


async def rotate_agent_token(
    conn: AsyncConnection, agent: dict[str, Any], *, actor: str = audit.LOCAL_USER
) -> str:
    """Give the agent a new token (the old one stops working at once); returns it, once."""
    token, token_hash = new_agent_token()
    await conn.execute(
        update(agents)
        .where(agents.c.id == agent["id"])
        .values(token_hash=token_hash, token_rotated_at=func.now(), updated_at=func.now())
    )
    await audit.record(
        conn,
        actor=actor,
        action="agent.token_rotated",
        subject_type="agent",
        subject_id=agent["id"],
        company_id=agent["company_id"],
        payload={"name": agent["name"]},
    )
    return token


async def authenticate_agent(conn: AsyncConnection, token: str) -> dict[str, Any]:
    """The agent an identity token belongs to; ``Unauthorized`` when unknown or retired."""
    if not token.startswith(AGENT_TOKEN_PREFIX):
        raise Unauthorized("not an agent token")
    row = (
        (await conn.execute(select(agents).where(agents.c.token_hash == hash_token(token))))
        .mappings()
        .first()
    )
    if row is None or row["status"] == "retired":
        raise Unauthorized("unknown agent token")
    return dict(row)
