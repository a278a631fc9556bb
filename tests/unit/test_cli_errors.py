"""How errors leave the CLI: one redacted line, or one redacted JSON object."""

from __future__ import annotations

import json

import pytest

from company_agents.cli.errors import edge_error, report_error
from company_agents.errors import DatabaseUnavailable


def test_json_errors_stay_valid_json_with_passwords_hidden(capsys: pytest.CaptureFixture[str]) -> None:
    error = DatabaseUnavailable(
        "cannot connect to host=h password=hunter2", dsn="postgresql://u:hunter3@h/d?password=hunter4"
    )
    report_error(error, as_json=True)
    out, err = capsys.readouterr()
    body = json.loads(out)
    assert err == "" and "hunter" not in out
    assert body["error"]["code"] == "database_unavailable"
    assert body["error"]["details"]["dsn"] == "postgresql://u:***@h/d?password=***"


def test_plain_errors_are_exactly_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    report_error(edge_error(RuntimeError("first\nsecond [bold]markup[/bold]")), as_json=False)
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert err == "error: RuntimeError: first\n"
