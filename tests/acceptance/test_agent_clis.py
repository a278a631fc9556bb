"""The real agent CLIs (Claude Code, Codex, Gemini CLI) under a real `up`, offline: a scripted model
server the test owns (tests/fakes/model_server.py) stands in for the provider, and our MCP server on
the tool port is the agent's only way to finish its task.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import psutil
import psycopg
import pytest

from company_agents.costs.ledger import Usage
from company_agents.pricing.book import book_price
from tests.acceptance.orchestrator import Orchestrator, add_task, cli, query, set_secret, wait_for
from tests.conftest import PgServer
from tests.fakes.agent_clis import cli_binary
from tests.fakes.model_server import ModelServer, Script

pytestmark = pytest.mark.slow  # real `up` and real CLIs
KEY = "sk-test-not-a-real-key"  # the company secret every test stores as the CLI's key


@pytest.fixture
def db_url(external_pg: PgServer) -> str:
    return external_pg.create_database()


@pytest.fixture
def model() -> Iterator[ModelServer]:
    with ModelServer(Script()) as server:
        yield server


@pytest.fixture
def env(cli_env: dict[str, str], db_url: str, model: ModelServer) -> dict[str, str]:
    return {
        **cli_env,
        "DATABASE_URL": db_url,
        "COMPANY_AGENTS_SCHEDULER_POLL_SECONDS": "0.2",
        "COMPANY_AGENTS_SHUTDOWN_GRACE_SECONDS": "2",
        "COMPANY_AGENTS_RETRY_BACKOFF_BASE_SECONDS": "0",
        # Straight to the provider, the key handed to the CLI: the direct path (docs/gateway.md);
        # tests/acceptance/test_gateway.py runs the CLIs through the gateway.
        "COMPANY_AGENTS_GATEWAY": "off",
        # The provider endpoints the CLIs honour, handed on by the adapters.
        "ANTHROPIC_BASE_URL": model.url,
        "OPENAI_BASE_URL": f"{model.url}/v1",
        "GOOGLE_GEMINI_BASE_URL": model.url,
    }


def hire(env: dict[str, str], adapter: str, model: str, *extra: str) -> None:
    cli(env, "new", "--name", "Acme", "--teams", "Eng")
    key = {"claude-code": "ANTHROPIC_API_KEY", "codex": "OPENAI_API_KEY", "gemini-cli": "GEMINI_API_KEY"}
    set_secret(env, key[adapter], KEY)
    cli(
        env,
        "agent",
        "hire",
        "--company",
        "acme",
        "--name",
        "coder",
        "--role",
        "writes code",
        "--adapter",
        adapter,
        "--model",
        model,
        "--team",
        "Eng",
        *extra,
    )


def runs_of(db_url: str, task_id: str) -> list[tuple[object, ...]]:
    return query(
        db_url,
        "SELECT fencing_token, status, exit_reason, error FROM runs WHERE task_id = %s ORDER BY 1",
        task_id,
    )


def test_claude_code_without_our_mcp_server_fails_the_run_and_is_retried(
    env: dict[str, str], home: Path, db_url: str, model: ModelServer
) -> None:
    cli_binary("claude-code")
    hire(env, "claude-code", "claude-sonnet-4-5")
    # The tool port answers, but its MCP endpoint refuses the run's bearer: Claude reports the server
    # failed in its init event, and the run must fail instead of succeeding without our tools.
    env = {**env, "MCP_SERVER_URL": f"{model.url}/nowhere"}
    task_id = add_task(env, "write hello.txt")
    orch = Orchestrator(env)
    try:
        wait_for(lambda: len(runs_of(db_url, task_id)) >= 2 and runs_of(db_url, task_id)[0][1] != "running")
    finally:
        orch.terminate()
    first = runs_of(db_url, task_id)[0]
    assert first[:3] == (1, "failed", "failed")
    assert "MCP server did not connect" in str(first[3])
    assert runs_of(db_url, task_id)[1][0] == 2  # retried with a higher fencing token


# -- with our MCP server ---------------------------------------------------------------------------

MODELS = {"claude-code": "claude-sonnet-4-5", "codex": "gpt-5.1", "gemini-cli": "gemini-2.5-flash"}
PROVIDERS = {"claude-code": "anthropic", "codex": "openai", "gemini-cli": "google"}
# The scripted usage of the two replies (tests/fakes/model_server.py), as each CLI reports it: Codex
# and Gemini have no cache writes in their usage, and Codex reports the reasoning tokens.
TOTALS = {
    "claude-code": (2200, 70, 800, 200),
    "codex": (2200, 70, 800, 0),
    "gemini-cli": (2200, 70, 800, 0),
}


def status(db_url: str, task_id: str) -> str:
    return str(query(db_url, "SELECT status FROM tasks WHERE id = %s", task_id)[0][0])


def entries(db_url: str, task_id: str) -> list[tuple[Any, ...]]:
    return query(
        db_url,
        "SELECT model, input_tokens, output_tokens, cache_read_tokens, cache_write_5m_tokens, effective_usd, "
        "price_source, details FROM cost_entries WHERE task_id = %s ORDER BY created_at",
        task_id,
    )


@pytest.mark.parametrize("kind", list(MODELS))
def test_a_cli_runs_a_task_to_review_through_our_mcp_tool_and_its_usage_is_priced_once(
    kind: str, env: dict[str, str], home: Path, db_url: str, model: ModelServer
) -> None:
    cli_binary(kind)
    model.script.model_version = MODELS[kind]  # Gemini keys its stats by the answering model
    hire(env, kind, MODELS[kind])
    task_id = add_task(env, "write hello")
    orch = Orchestrator(env)
    try:
        wait_for(lambda: status(db_url, task_id) == "review", timeout=90, what="review")
        # The last request's usage lands just after mark_complete: wait for the run's end.
        wait_for(lambda: "agent exited" in _run_log(home, db_url, task_id), what="the CLI's exit")
    finally:
        orch.terminate()
    ((fence, run_status, reason, _),) = runs_of(db_url, task_id)
    assert (fence, run_status, reason) == (1, "succeeded", "complete")
    (output,) = query(db_url, "SELECT output FROM tasks WHERE id = %s", task_id)[0]
    assert "hello from the fake model" in json.dumps(output)
    rows = entries(db_url, task_id)
    usage = tuple(sum(r[i] for r in rows) for i in range(1, 5))
    assert usage == TOTALS[kind]
    inp, out, cached, written = TOTALS[kind]
    priced = book_price(
        MODELS[kind],
        PROVIDERS[kind],
        Usage(input_tokens=inp, output_tokens=out, cache_read_tokens=cached, cache_write_5m_tokens=written),
    )
    assert priced is not None
    total = sum((r[5] for r in rows), Decimal(0))
    # Priced per entry, each rounded to the ledger's 8 places: within a few units of the last place.
    assert abs(total - priced.usd) <= Decimal("0.00000005") * len(rows)
    assert all(str(r[6]).startswith("book:") for r in rows)
    if kind == "claude-code":
        # Claude Code's own price, kept beside ours: the same to the cent's millionth.
        reported = [r[7]["cliTotalCostUsd"] for r in rows if "cliTotalCostUsd" in r[7]]
        assert len(reported) == 1 and abs(Decimal(reported[0]) - total) < Decimal("0.0000001")
    # Exactly one call of our tool reached the model's script, and the MCP bearer was never in argv.
    log = _run_log(home, db_url, task_id)
    assert "ca_lease_" not in log.split("[stdout]")[0]


def _run_log(home: Path, db_url: str, task_id: str) -> str:
    rows = query(db_url, "SELECT id FROM runs WHERE task_id = %s ORDER BY fencing_token", task_id)
    return "".join(
        (home / "logs" / "runs" / f"{r[0]}.log").read_text()
        for r in rows
        if (home / "logs" / "runs" / f"{r[0]}.log").exists()
    )


@pytest.mark.parametrize("kind", list(MODELS))
def test_a_model_401_fails_the_run_fast_with_the_reason_and_the_retry_succeeds(
    kind: str, env: dict[str, str], home: Path, db_url: str, model: ModelServer
) -> None:
    cli_binary(kind)
    model.script.model_version = MODELS[kind]
    hire(env, kind, MODELS[kind])
    model.fail(401, 1, "Invalid API key provided: {key}")
    task_id = add_task(env, "write hello")
    orch = Orchestrator(env)
    try:
        wait_for(lambda: status(db_url, task_id) == "review", timeout=90, what="review on the retry")
    finally:
        orch.terminate()
    (first, second) = runs_of(db_url, task_id)
    assert first[:3] == (1, "failed", "failed")
    assert "401" in str(first[3]) or "Invalid API key" in str(first[3]), first[3]
    # The provider quoted the key it refused; neither the reason nor the run log repeats it.
    assert any(KEY in json.dumps(r.body) or KEY in str(r.headers) for r in model.requests)
    assert KEY not in str(first[3]) and KEY not in _run_log(home, db_url, task_id)
    assert second[:3] == (2, "succeeded", "complete")


def test_claude_code_500_fails_fast_with_the_reason(
    env: dict[str, str], home: Path, db_url: str, model: ModelServer
) -> None:
    cli_binary("claude-code")
    hire(env, "claude-code", MODELS["claude-code"])
    model.fail(500, 1, "fake injected 500")
    task_id = add_task(env, "write hello", "--max-attempts", "1")
    orch = Orchestrator(env)
    try:
        wait_for(lambda: status(db_url, task_id) == "failed", timeout=60, what="failed")
    finally:
        orch.terminate()
    ((_, run_status, reason, error),) = runs_of(db_url, task_id)
    assert (run_status, reason) == ("failed", "failed")
    assert "500" in str(error)
    # One model request: no client-side retries (CLAUDE_CODE_MAX_RETRIES=0).
    assert len(model.model_requests()) == 1


def _processes_with(text: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error):
            if text in " ".join(proc.info["cmdline"] or []):
                found.append(proc)
    return found


def test_sigterm_of_up_mid_run_ends_the_cli_and_its_tool_child_and_releases_the_lease(
    env: dict[str, str], home: Path, db_url: str, model: ModelServer
) -> None:
    cli_binary("claude-code")
    marker = f"ca-test-sleeper-{time.time_ns()}"
    # The model runs a Bash command that outlives a kill of Claude's group (its own session).
    model.script.tool = "Bash"
    model.script.tool_input = {
        "command": f"python3 -c 'import time; time.sleep(300)' {marker}",
        "description": "wait",
    }
    hire(env, "claude-code", MODELS["claude-code"])
    task_id = add_task(env, "wait")
    orch = Orchestrator(env)
    try:
        wait_for(lambda: bool(_processes_with(marker)), timeout=60, what="the Bash tool's child")
        assert _processes_with(str(cli_binary("claude-code")))
    finally:
        orch.terminate()
    wait_for(lambda: not _processes_with(marker), timeout=10, what="the tool child gone")
    assert not _processes_with(cli_binary("claude-code"))
    ((_, run_status, reason, _),) = runs_of(db_url, task_id)
    assert (run_status, reason) == ("cancelled", "shutdown")
    assert status(db_url, task_id) == "queued"
    assert query(db_url, "SELECT count(*) FROM leases WHERE task_id = %s", task_id) == [(0,)]


def test_a_task_budget_reached_mid_run_stops_claude_code_and_blocks_the_task(
    env: dict[str, str], home: Path, db_url: str, model: ModelServer
) -> None:
    cli_binary("claude-code")
    # The first request alone (about $0.0045 at the book's price) is past the task's $0.001.
    model.script.tool = "report_progress"
    model.script.tool_input = {"message": "working on it"}
    hire(env, "claude-code", MODELS["claude-code"])
    task_id = add_task(env, "spend", "--budget", "0.001")
    orch = Orchestrator(env)
    try:
        wait_for(lambda: status(db_url, task_id) == "blocked", timeout=60, what="blocked by the budget")
    finally:
        orch.terminate()
    ((_, run_status, reason, _),) = runs_of(db_url, task_id)
    assert (run_status, reason) == ("cancelled", "budget")
    (blocked,) = query(db_url, "SELECT blocked_reason FROM tasks WHERE id = %s", task_id)[0]
    assert blocked == "budget"
    assert entries(db_url, task_id)  # what was spent is recorded


def test_a_zombie_claude_codes_mark_complete_is_refused_and_the_retry_with_a_higher_token_wins(
    env: dict[str, str], home: Path, db_url: str, model: ModelServer
) -> None:
    cli_binary("claude-code")
    # Every model reply takes 3 s: long enough to reap the first run's lease while its CLI waits.
    model.script.delay_seconds = 3
    hire(env, "claude-code", MODELS["claude-code"])
    task_id = add_task(env, "write hello")
    orch = Orchestrator({**env, "COMPANY_AGENTS_REAPER_INTERVAL_SECONDS": "0.2"})
    try:
        wait_for(lambda: bool(model.model_requests()), timeout=60, what="the first model request")
        with psycopg.connect(db_url) as conn:
            # Expired, yet after it was acquired (a CHECK): the CLI may ask the model within a second.
            conn.execute(
                "UPDATE leases SET expires_at = GREATEST(acquired_at + interval '1 microsecond', "
                "now() - interval '1 second') WHERE task_id = %s",
                (task_id,),
            )
        wait_for(lambda: status(db_url, task_id) == "review", timeout=90, what="review by the second run")
        wait_for(
            lambda: bool(
                query(db_url, "SELECT 1 FROM audit_events WHERE action = 'lease.stale_write_rejected'")
            ),
            timeout=30,
            what="the zombie's refused mark_complete, audited",
        )
    finally:
        orch.terminate()
    first, second = runs_of(db_url, task_id)[:2]
    assert first[:3] == (1, "failed", "lease_expired")
    assert second[:3] == (2, "succeeded", "complete")
    (fence,) = query(db_url, "SELECT fencing_token FROM tasks WHERE id = %s", task_id)[0]
    assert fence == 2


def test_adapter_check_finds_the_cli_and_our_mcp_server(env: dict[str, str], home: Path) -> None:
    binary = cli_binary("claude-code")
    cli(env, "new", "--name", "Acme", "--teams", "Eng")
    orch = Orchestrator(env)
    try:
        findings = cli(
            {**env, "COMPANY_AGENTS_TOOL_PORT": str(orch.tool_port)},
            "adapter",
            "check",
            "claude-code",
            "--company",
            "acme",
        )
    finally:
        orch.terminate()
    by_name = {f["name"]: f for f in findings}
    assert all(f["ok"] for f in findings), findings
    assert binary in by_name["binary"]["detail"] and "2.1.332" in by_name["binary"]["detail"]
    assert "ANTHROPIC_API_KEY" in by_name["key"]["detail"]
    assert "401" in by_name["mcp server"]["detail"]
