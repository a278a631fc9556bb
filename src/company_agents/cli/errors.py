"""How an error leaves the CLI: one line on stderr, or one JSON object on stdout with ``--json``.

Whatever reaches here is shown without the SQL, its parameters or a password: driver errors are
translated (``db.errors.translate``), every message is redacted (``db.database.redact``) and folded onto
one line.
"""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.markup import escape

from company_agents.cli.output import json_default
from company_agents.db.redaction import redact
from company_agents.errors import CompanyAgentsError


class UsageError(CompanyAgentsError):
    """The command line is not valid (see --help)."""

    code = "usage_error"


class InternalError(CompanyAgentsError):
    """An unexpected error (run again with --debug for the traceback)."""

    code = "internal_error"


def edge_error(exc: BaseException) -> CompanyAgentsError:
    """Our error for anything a command raised."""
    from company_agents.db.errors import is_database_error, translate

    if isinstance(exc, CompanyAgentsError) or is_database_error(exc):
        return translate(exc)
    text = str(exc).strip().splitlines()
    return InternalError(f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__)


def one_line(message: str) -> str:
    return redact(" ".join(message.split()))


def _redacted(value: Any) -> Any:
    # Value by value: redacting the JSON text could swallow the quotes and braces after a password.
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redacted(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redacted(v) for v in value]
    return value


def report_error(error: CompanyAgentsError, *, as_json: bool) -> None:
    """Print ``error``: the JSON body on stdout with ``--json``, else ``error: …`` on one stderr line."""
    message = one_line(error.message)
    if as_json:
        details = _redacted(error.details)
        body: dict[str, Any] = {"error": {"code": error.code, "message": message, "details": details}}
        print(json.dumps(body, default=json_default))
        return
    Console(stderr=True, soft_wrap=True).print(f"[red]error:[/] {escape(message)}", highlight=False)
