"""Driver errors, classified and translated into our hierarchy (``company_agents.errors``).

The code below the edges raises whatever psycopg or SQLAlchemy raise; two questions are answered here
and nowhere else:

- ``is_transient``: is the error one that the same statement may not hit a moment later (the server went
  away or restarted, too many connections, a serialization failure or a deadlock)? ``db.retry`` retries
  those, and only those.
- ``translate``: which of our errors does it mean? Connection classes become ``DatabaseUnavailable``;
  a violated constraint the domain error its name stands for (``db.violations``); a missing table or
  column ``SchemaOutOfDate``; anything else a one-line ``DatabaseError``. None of them ever carries the
  SQL or its parameters.
"""

from __future__ import annotations

from typing import Any

import psycopg
from sqlalchemy import exc as sa_exc

from company_agents.db.violations import violation_error
from company_agents.errors import CompanyAgentsError, DatabaseError, DatabaseUnavailable, SchemaOutOfDate

# SQLSTATE classes and codes (https://www.postgresql.org/docs/current/errcodes-appendix.html).
CONNECTION_CLASSES = ("08",)  # connection exception
CONNECTION_CODES = frozenset(
    {
        "53300",  # too_many_connections
        "57P01",  # admin_shutdown (the server is stopping, or pg_terminate_backend)
        "57P02",  # crash_shutdown
        "57P03",  # cannot_connect_now (starting up, in recovery)
        "57P05",  # idle_session_timeout
    }
)
SERIALIZATION_FAILURE = "40001"
DEADLOCK_DETECTED = "40P01"
RETRYABLE_CONFLICT_CODES = frozenset({SERIALIZATION_FAILURE, DEADLOCK_DETECTED})
# undefined_table, undefined_column, undefined_function: the schema is not the one this program expects.
SCHEMA_CODES = frozenset({"42P01", "42703", "42883"})


def driver_error(exc: BaseException) -> BaseException:
    """The psycopg error under a SQLAlchemy wrapper (or ``exc`` itself)."""
    if isinstance(exc, sa_exc.DBAPIError) and exc.orig is not None:
        return exc.orig
    return exc


def sqlstate(exc: BaseException) -> str | None:
    err = driver_error(exc)
    state = getattr(err, "sqlstate", None)
    return state if isinstance(state, str) else None


def is_connection_error(exc: BaseException) -> bool:
    """The connection (or the server behind it) is gone or refusing us: another try may succeed."""
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, sa_exc.DisconnectionError | sa_exc.TimeoutError):  # pool exhausted or timed out
        return True
    err = driver_error(exc)
    state = sqlstate(err)
    if state is not None:
        return state.startswith(CONNECTION_CLASSES) or state in CONNECTION_CODES
    # No SQLSTATE: libpq could not connect, or the socket broke mid-statement.
    return isinstance(err, psycopg.OperationalError | psycopg.InterfaceError | ConnectionError)


def is_conflict(exc: BaseException) -> bool:
    """A serialization failure or deadlock: the server rolled the transaction back, nothing of it was
    applied, so running it again is safe even when it is not idempotent."""
    return sqlstate(exc) in RETRYABLE_CONFLICT_CODES


def is_transient(exc: BaseException) -> bool:
    """Worth retrying: the database was unavailable, or a serialization failure or deadlock."""
    return is_connection_error(exc) or sqlstate(exc) in RETRYABLE_CONFLICT_CODES


def first_line(exc: BaseException) -> str:
    """The driver's message without the statement, parameters or hints SQLAlchemy appends."""
    err = driver_error(exc)
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def is_database_error(exc: BaseException) -> bool:
    """Raised by the driver or SQLAlchemy (what ``translate`` is for)."""
    return isinstance(exc, sa_exc.SQLAlchemyError | psycopg.Error)


def translate(exc: BaseException, **details: Any) -> CompanyAgentsError:
    """Our error for a driver error; already-translated errors pass through.

    ``details`` (e.g. ``slug=…``, ``name=…``) go into the error and fill the placeholders of the
    constraint's message.
    """
    if isinstance(exc, CompanyAgentsError):
        return exc
    if is_connection_error(exc):
        return DatabaseUnavailable(f"the database is unavailable: {first_line(exc)}", **details)
    state = sqlstate(exc)
    if state is not None:
        statement = exc.statement if isinstance(exc, sa_exc.StatementError) else None
        violation = violation_error(driver_error(exc), state, statement, dict(details))
        if violation is not None:
            return violation
        details.setdefault("sqlstate", state)
        if state in SCHEMA_CODES:
            return SchemaOutOfDate(
                f"the database schema does not match this program ({first_line(exc)}); "
                "see `company-agents db status`",
                **details,
            )
    return DatabaseError(f"database error: {first_line(exc)}", **details)
