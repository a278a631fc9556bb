"""All tables, one module per domain, on one shared ``MetaData``."""

from __future__ import annotations

from company_agents.db.schema.agents import agents, teams
from company_agents.db.schema.audit import audit_events, audit_seals
from company_agents.db.schema.base import metadata
from company_agents.db.schema.companies import companies
from company_agents.db.schema.costs import cost_entries
from company_agents.db.schema.integrations import integrations
from company_agents.db.schema.leases import leases
from company_agents.db.schema.memory import memory_entries
from company_agents.db.schema.runs import run_checkpoints, runs
from company_agents.db.schema.secrets import secrets
from company_agents.db.schema.tasks import tasks

__all__ = [
    "agents",
    "audit_events",
    "audit_seals",
    "companies",
    "cost_entries",
    "integrations",
    "leases",
    "memory_entries",
    "metadata",
    "run_checkpoints",
    "runs",
    "secrets",
    "tasks",
    "teams",
]
