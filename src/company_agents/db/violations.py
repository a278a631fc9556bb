"""What a constraint violation means, by constraint name (the names are fixed by ``schema.base``).

PostgreSQL tells us which constraint a write broke (``diag.constraint_name``), so the meaning comes from
the schema rather than from the statement that happened to hit it: a duplicate slug is "slug taken", a
missing team is "no such team", and an integration still using a secret is "in use". Constraints not
listed here still give one line that names the constraint (never the SQL or its values).

A foreign key is broken from one of two sides: a row that points at nothing (an INSERT or UPDATE of the
referencing table) or a row that is still pointed at (a DELETE of the referenced one, under
``ON DELETE RESTRICT``). Before PostgreSQL 18 the SQLSTATE is the same; the statement's verb tells them
apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from company_agents.errors import CompanyAgentsError, Conflict, InvalidInput, NotFound

UNIQUE_VIOLATION = "23505"
FOREIGN_KEY_VIOLATION = "23503"
# PostgreSQL 18 reports a row still referenced under ON DELETE RESTRICT as restrict_violation; older
# servers as a foreign_key_violation (told apart by the statement's verb below).
RESTRICT_VIOLATION = "23001"
CHECK_VIOLATION = "23514"
NOT_NULL_VIOLATION = "23502"
EXCLUSION_VIOLATION = "23P01"


@dataclass(frozen=True)
class Meaning:
    """The domain error a violated constraint stands for.

    ``message`` may name details the caller passes to ``translate`` (``{slug!r}``); when one is missing
    the ``bare`` message (no placeholders) is used instead.
    """

    error: type[CompanyAgentsError]
    message: str
    bare: str
    field: str | None = None


def _m(
    error: type[CompanyAgentsError], message: str, bare: str | None = None, field: str | None = None
) -> Meaning:
    return Meaning(error, message, bare or message, field)


# Unique constraints: a duplicate of something that must be one of a kind.
UNIQUE: dict[str, Meaning] = {
    "uq_companies_slug": _m(Conflict, "the slug {slug!r} is taken", "that slug is taken", "slug"),
    "uq_teams_company_id_name": _m(
        Conflict,
        "the company already has a team named {name!r}",
        "the company already has a team of that name",
        "name",
    ),
    "uq_agents_company_id_name": _m(
        Conflict,
        "the company already has an agent named {name!r}",
        "the company already has an agent of that name",
        "name",
    ),
    "uq_secrets_company_id_name": _m(
        Conflict,
        "a secret named {name!r} exists; use `secret rotate` to change its value",
        "a secret of that name exists; use `secret rotate` to change its value",
        "name",
    ),
    "uq_integrations_company_id_name": _m(
        Conflict, "an integration named {name!r} exists", "an integration of that name exists", "name"
    ),
    "uq_runs_task_id_attempt": _m(Conflict, "this attempt of the task is already recorded"),
    # Tokens are 256 random bits: a collision means the same token was stored twice, never chance.
    "uq_agents_token_hash": _m(Conflict, "that identity token is already in use"),
    "uq_runs_lease_token_hash": _m(Conflict, "that lease token is already in use"),
}

# Foreign keys broken by the referencing row: it points at something that is not there (or not in the
# same company, for the composite keys that keep a company's rows together).
MISSING_TARGET: dict[str, Meaning] = {
    "fk_agents_team": _m(InvalidInput, "the team is not one of this company's teams", field="team"),
    "fk_agents_reports_to": _m(
        InvalidInput, "the manager is not an agent of this company", field="reportsTo"
    ),
    "fk_teams_manager_agent": _m(InvalidInput, "the manager agent does not exist", field="manager"),
    "fk_integrations_secret": _m(
        InvalidInput, "the credential is not one of this company's secrets", field="secret"
    ),
    "fk_tasks_assigned_agent": _m(
        InvalidInput, "the assignee is not an agent of this company", field="agent"
    ),
    "fk_tasks_assigned_team": _m(InvalidInput, "the team is not one of this company's teams", field="team"),
    "fk_tasks_parent": _m(InvalidInput, "the parent task is not a task of this company", field="parent"),
}

# Foreign keys broken by deleting a row that others still point at (ON DELETE RESTRICT).
STILL_REFERENCED: dict[str, Meaning] = {
    "fk_integrations_secret": _m(
        Conflict,
        "secret {name!r} is the credential of an integration; remove the integration first",
        "the secret is the credential of an integration; remove the integration first",
    ),
    "fk_agents_team": _m(Conflict, "the team still has agents; move or retire them first"),
    "fk_agents_reports_to": _m(Conflict, "other agents still report to this agent"),
    "fk_tasks_parent": _m(Conflict, "the task still has subtasks"),
}

# CHECK constraints: a value outside the rules the schema enforces.
CHECKS: dict[str, Meaning] = {
    "ck_companies_slug_format": _m(
        InvalidInput, "slug: lowercase letters, digits and '-', at most 63 characters", field="slug"
    ),
    "ck_secrets_name_format": _m(
        InvalidInput,
        "name: letters, digits, '_', '.', '-', starting with a letter or '_', at most 128 characters",
        field="name",
    ),
    "ck_integrations_kind_format": _m(
        InvalidInput, "kind: lowercase letters, digits, '_' or '-', at most 32 characters", field="kind"
    ),
    "ck_agents_not_own_manager": _m(InvalidInput, "an agent cannot report to itself", field="reportsTo"),
    "ck_tasks_not_own_parent": _m(InvalidInput, "a task cannot be its own parent", field="parent"),
    "ck_tasks_title_length": _m(InvalidInput, "title: 1 to 500 characters", field="title"),
    "ck_agents_max_concurrent_positive": _m(
        InvalidInput, "maxConcurrentTasks: at least 1", field="maxConcurrentTasks"
    ),
    "ck_tasks_max_attempts_positive": _m(InvalidInput, "maxAttempts: at least 1", field="maxAttempts"),
}
for _table in ("companies", "teams", "agents", "tasks"):
    CHECKS[f"ck_{_table}_budget_nonnegative"] = _m(
        InvalidInput, "budget: must not be negative", field="budget"
    )


def _message(meaning: Meaning, details: dict[str, Any]) -> str:
    try:
        return meaning.message.format_map(details)
    except (KeyError, IndexError):  # the caller did not pass that detail
        return meaning.bare


def _diag(err: BaseException) -> tuple[str | None, str | None, str | None]:
    diag = getattr(err, "diag", None)
    if diag is None:
        return None, None, None
    return diag.constraint_name, diag.table_name, diag.column_name


def violation_error(
    err: BaseException, state: str, statement: str | None, details: dict[str, Any]
) -> CompanyAgentsError | None:
    """The domain error for an integrity violation (``err`` is the psycopg error), or None if it is none."""
    if not state.startswith("23"):
        return None
    constraint, table, column = _diag(err)
    named = {"constraint": constraint} if constraint else {}
    if state == NOT_NULL_VIOLATION:
        what = f"{table}.{column}" if table and column else "a required value"
        return InvalidInput(f"{what} is required", **details, **named)
    meaning: Meaning | None = None
    generic: CompanyAgentsError
    if state == UNIQUE_VIOLATION:
        meaning = UNIQUE.get(constraint or "")
        generic = Conflict(f"that already exists (constraint {constraint})", **details, **named)
    elif state in (FOREIGN_KEY_VIOLATION, RESTRICT_VIOLATION):
        deleting = state == RESTRICT_VIOLATION or (statement or "").lstrip().upper().startswith("DELETE")
        meaning = (STILL_REFERENCED if deleting else MISSING_TARGET).get(constraint or "")
        if meaning is None and deleting:
            generic = Conflict(
                f"still in use by {table or 'other rows'} (constraint {constraint})", **details, **named
            )
        elif meaning is None and constraint and constraint.endswith("_companies"):
            generic = NotFound("the company does not exist", **details, **named)
        else:
            generic = InvalidInput(
                f"refers to something that does not exist (constraint {constraint})", **details, **named
            )
    elif state == CHECK_VIOLATION:
        meaning = CHECKS.get(constraint or "")
        generic = InvalidInput(f"a value breaks the rule {constraint}", **details, **named)
    elif state == EXCLUSION_VIOLATION:
        generic = Conflict(
            f"that conflicts with an existing row (constraint {constraint})", **details, **named
        )
    else:
        generic = InvalidInput(f"integrity rule broken (constraint {constraint})", **details, **named)
    if meaning is None:
        return generic
    extra = {"field": meaning.field} if meaning.field and "field" not in details else {}
    return meaning.error(_message(meaning, details), **details, **extra, **named)
