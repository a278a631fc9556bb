"""All tables, one module per domain, on one shared ``MetaData``."""

from __future__ import annotations

from company_agents.db.schema.agents import agents, teams
from company_agents.db.schema.api_tokens import api_tokens
from company_agents.db.schema.approvals import approval_rules, approvals
from company_agents.db.schema.audit import audit_events, audit_seals
from company_agents.db.schema.base import metadata
from company_agents.db.schema.budgets import budget_breaches, budget_grants, workflow_budgets
from company_agents.db.schema.companies import companies
from company_agents.db.schema.costs import cost_counters, cost_entries
from company_agents.db.schema.hosts import backups, database_key, orchestrators
from company_agents.db.schema.integrations import integrations
from company_agents.db.schema.leases import leases
from company_agents.db.schema.memory import memory_entries
from company_agents.db.schema.pricing import price_overrides
from company_agents.db.schema.runs import run_checkpoints, runs
from company_agents.db.schema.secrets import secrets
from company_agents.db.schema.task_comments import task_comments
from company_agents.db.schema.tasks import tasks
from company_agents.db.schema.webhooks import webhook_deliveries, webhook_endpoints

__all__ = [
    "agents",
    "api_tokens",
    "approval_rules",
    "approvals",
    "audit_events",
    "audit_seals",
    "backups",
    "budget_breaches",
    "budget_grants",
    "companies",
    "cost_counters",
    "cost_entries",
    "database_key",
    "integrations",
    "leases",
    "memory_entries",
    "metadata",
    "orchestrators",
    "price_overrides",
    "run_checkpoints",
    "runs",
    "secrets",
    "task_comments",
    "tasks",
    "teams",
    "webhook_deliveries",
    "webhook_endpoints",
    "workflow_budgets",
]
