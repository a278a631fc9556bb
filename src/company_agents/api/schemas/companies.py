"""Companies and teams as the API and ``company …/team … --json`` show them."""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from pydantic import Field

from company_agents.api.schemas.common import MONEY_PATTERN, Body, Money, Public, UtcTime

SLUG_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
FiscalPeriod = Literal["monthly", "rolling-30d"]


class Company(Public):
    id: UUID
    slug: str
    name: str
    description: str
    budget_usd: Money | None
    fiscal_period: str
    default_adapter: str | None
    status: str
    created_at: UtcTime
    archived_at: UtcTime | None


class CompanyCreate(Body):
    name: str = Field(min_length=1, max_length=200, pattern=r"\S")
    slug: str | None = Field(default=None, pattern=SLUG_PATTERN)
    description: str = Field(default="", max_length=10_000)
    budget_usd: str | None = Field(default=None, pattern=MONEY_PATTERN.replace("-?", ""))
    fiscal_period: FiscalPeriod = "monthly"
    teams: list[str] = Field(default_factory=list, max_length=50)
    default_adapter: str | None = Field(default=None, min_length=1, max_length=100)


class CompanyPatch(Body):
    name: str | None = Field(default=None, min_length=1, max_length=200, pattern=r"\S")
    description: str | None = Field(default=None, max_length=10_000)
    budget_usd: str | None = Field(default=None, pattern=MONEY_PATTERN.replace("-?", ""))
    fiscal_period: FiscalPeriod | None = None
    default_adapter: str | None = Field(default=None, min_length=1, max_length=100)


class Team(Public):
    id: UUID
    company_id: UUID
    name: str
    manager_agent_id: UUID | None
    budget_usd: Money | None
    created_at: UtcTime


class TeamCreate(Body):
    name: str = Field(min_length=1, max_length=200, pattern=r"\S")
    budget_usd: str | None = Field(default=None, pattern=MONEY_PATTERN.replace("-?", ""))
