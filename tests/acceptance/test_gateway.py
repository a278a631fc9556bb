"""The model gateway under a real `up` (docs/gateway.md): a test agent that calls it as a CLI would,
and the real CLIs offline, against the scripted fake model server (tests/fakes/model_server.py)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg
import pytest

from company_agents.costs.ledger import Usage
from company_agents.pricing.book import book_price
from tests.acceptance.orchestrator import (
    Orchestrator,
    add_task,
    cli,
    query,
    set_secret,
    setup_company,
    wait_for,
)
from tests.conftest import PgServer
from tests.fakes.agent_clis import cli_binary
from tests.fakes.model_server import ModelServer, Script, TurnUsage

pytestmark = pytest.mark.slow  # real `up`
KEY = "sk-ant-real-key-in-the-store"
AGENT = Path(__file__).parent / "agents" / "gateway_agent.py"
MODEL = "claude-sonnet-4-5"


@pytest.fixture
def db_url(external_pg: PgServer) -> str:
    return external_pg.create_database()


@pytest.fixture
def model() -> Iterator[ModelServer]:
    with ModelServer(Script()) as server:
        yield server


@pytest.fixture
def out(tmp_path: Path) -> Path:
    return tmp_path / "calls.jsonl"


@pytest.fixture
def env(cli_env: dict[str, str], db_url: str, model: ModelServer) -> dict[str, str]:
    return {
        **cli_env,
        "DATABASE_URL": db_url,
        "COMPANY_AGENTS_SCHEDULER_POLL_SECONDS": "0.2",
        "COMPANY_AGENTS_SHUTDOWN_GRACE_SECONDS": "2",
        "COMPANY_AGENTS_RETRY_BACKOFF_BASE_SECONDS": "0",
        "COMPANY_AGENTS_REAPER_INTERVAL_SECONDS": "0.2",
        # The test agent writes what it saw into the test's own directory.
        "COMPANY_AGENTS_ISOLATION": "none",
        # Where the gateway forwards to: the fake, as a company proxy would be configured.
        "ANTHROPIC_BASE_URL": model.url,
        "OPENAI_BASE_URL": f"{model.url}/v1",
        "GOOGLE_GEMINI_BASE_URL": model.url,
    }


def set_key(env: dict[str, str], name: str = "ANTHROPIC_API_KEY", value: str = KEY) -> None:
    set_secret(env, name, value)


def company(env: dict[str, str], home: Path, out: Path, tmp_path: Path, **adapter: Any) -> None:
    setup_company(
        env,
        home,
        adapter_extra={
            "args": [str(AGENT)],
            "env": {"GATEWAY_AGENT_OUT": str(out), "GO_FILE": str(tmp_path / "go")},
            **adapter,
        },
    )
    set_key(env)


def answers(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []


def runs_of(db_url: str, task_id: str) -> list[tuple[Any, ...]]:
    return query(
        db_url,
        "SELECT fencing_token, status, exit_reason, error FROM runs WHERE task_id = %s ORDER BY 1",
        task_id,
    )


def ended(db_url: str, task_id: str) -> bool:
    runs = runs_of(db_url, task_id)
    return bool(runs) and runs[0][1] != "running"


def ledger(db_url: str, task_id: str) -> list[tuple[Any, ...]]:
    return query(
        db_url,
        "SELECT input_tokens, output_tokens, cache_read_tokens, cache_write_5m_tokens, effective_usd, "
        "idempotency_key, details FROM cost_entries WHERE task_id = %s AND kind = 'llm' ORDER BY created_at",
        task_id,
    )


def price(usage: TurnUsage, model: str = MODEL, provider: str = "anthropic") -> Decimal:
    found = book_price(
        model,
        provider,
        Usage(
            input_tokens=usage.input,
            output_tokens=usage.output,
            cache_read_tokens=usage.cache_read,
            cache_write_5m_tokens=usage.cache_write,
        ),
    )
    assert found is not None
    return found.usd


def test_a_streamed_call_reaches_the_agent_before_the_provider_finished_with_the_key_added_and_metered_once(
    env: dict[str, str], home: Path, db_url: str, model: ModelServer, out: Path, tmp_path: Path
) -> None:
    company(env, home, out, tmp_path)
    model.hold()  # the fake sends all but its last event, then waits
    task_id = add_task(env, "stream")
    orch = Orchestrator(env)
    try:
        wait_for(lambda: out.with_suffix(".first").exists(), timeout=60, what="the first chunk at the agent")
        # The agent holds the stream's first line while the provider has not finished sending.
        assert model.holding.is_set()
        assert out.with_suffix(".first").read_text().startswith("event: message_start")
        model.release()
        wait_for(lambda: ended(db_url, task_id), what="end")
    finally:
        model.release()
        orch.terminate()
    assert runs_of(db_url, task_id)[0][:3] == (1, "succeeded", "complete")
    (answer,) = answers(out)
    assert answer["status"] == 200 and "message_stop" in answer["body"]
    # The provider saw the real key from the store; the agent only ever held its run's token.
    (request,) = model.model_requests()
    assert request.headers["x-api-key"] == KEY
    assert request.path == "/v1/messages"
    agent_env = json.loads(out.with_suffix(".env").read_text())
    assert KEY not in json.dumps(agent_env)
    assert agent_env["CA_GATEWAY_URL"].startswith("http://127.0.0.1:")
    # One entry, exactly the usage the provider sent, priced by the book.
    ((inp, output, cached, written, usd, key, details),) = ledger(db_url, task_id)
    usage = model.served[0]
    assert (inp, output, cached, written) == (usage.input, usage.output, usage.cache_read, usage.cache_write)
    assert usd == price(usage)
    assert key.startswith("gateway:") and details["gateway"] is True


def test_a_budget_that_fits_two_calls_refuses_the_third_before_the_provider_sees_it(
    env: dict[str, str], home: Path, db_url: str, model: ModelServer, out: Path, tmp_path: Path
) -> None:
    company(env, home, out, tmp_path)
    cap = Decimal("0.10")
    one = price(model.script.call_usage)  # every call gets the same scripted reply
    # A worst case W with one + W <= cap < 2 * one + W: the second call fits, the third does not.
    body_bytes = len(
        json.dumps(
            {
                "model": MODEL,
                "max_tokens": 0,
                "stream": True,
                "messages": [{"role": "user", "content": "request 0"}],
            }
        )
    )
    per_output = book_price(MODEL, "anthropic", Usage(output_tokens=1_000_000))
    per_write = book_price(MODEL, "anthropic", Usage(cache_write_1h_tokens=1_000_000))
    assert per_output is not None and per_write is not None
    room = cap - one - one / 2 - per_write.usd * (body_bytes + 6) / 1_000_000
    max_tokens = int(room / per_output.usd * 1_000_000)
    task_id = add_task(env, f"calls 3 {max_tokens}", "--budget", str(cap))
    orch = Orchestrator(env)
    try:
        wait_for(lambda: ended(db_url, task_id), what="end")
    finally:
        orch.terminate()
    statuses = [a["status"] for a in answers(out)]
    assert statuses == [200, 200, 400]
    refusal = json.loads(answers(out)[2]["body"])
    assert refusal["type"] == "error" and refusal["error"]["type"] == "invalid_request_error"
    assert refusal["error"]["reason"] == "budget"
    assert len(model.model_requests()) == 2  # the third never left the gateway
    assert runs_of(db_url, task_id)[0][2] == "budget"
    rows = ledger(db_url, task_id)
    assert len(rows) == 2 and sum(r[4] for r in rows) <= cap


def test_the_same_request_repeated_ends_the_run_as_loop_detected(
    env: dict[str, str], home: Path, db_url: str, model: ModelServer, out: Path, tmp_path: Path
) -> None:
    env = {**env, "COMPANY_AGENTS_GATEWAY_LOOP_REPEATS": "3"}
    company(env, home, out, tmp_path)
    task_id = add_task(env, "loop 5")
    orch = Orchestrator(env)
    try:
        wait_for(lambda: ended(db_url, task_id), what="end")
    finally:
        orch.terminate()
    assert [a["status"] for a in answers(out)] == [200, 200, 400]
    assert json.loads(answers(out)[2]["body"])["error"]["reason"] == "loop_detected"
    assert len(model.model_requests()) == 2
    (_, status, reason, error) = runs_of(db_url, task_id)[0]
    assert (status, reason) == ("failed", "loop_detected") and "loop detected" in str(error)
    assert len(ledger(db_url, task_id)) == 2


def test_a_stale_gateway_token_is_refused_after_the_lease_was_reaped(
    env: dict[str, str], home: Path, db_url: str, model: ModelServer, out: Path, tmp_path: Path
) -> None:
    env = {**env, "COMPANY_AGENTS_GATEWAY_MAX_BODY_BYTES": "4096"}
    company(env, home, out, tmp_path)
    task_id = add_task(env, "stale")
    orch = Orchestrator(env)
    try:
        wait_for(lambda: out.with_suffix(".env").exists(), what="the agent")
        token = json.loads(out.with_suffix(".env").read_text())["CA_LEASE_TOKEN"]
        url = f"http://127.0.0.1:{orch.gateway_port}/anthropic/v1/messages"
        body = {"model": MODEL, "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
        headers = {"x-api-key": token, "anthropic-version": "2023-06-01"}
        assert httpx.post(url, json=body, headers=headers, timeout=30).status_code == 200  # while it holds
        # A body past the limit is refused unread, in the provider's shape.
        big = httpx.post(url, content=b"x" * 8192, headers=headers, timeout=30)
        assert big.status_code == 413 and big.json()["error"]["reason"] == "too_large"
        # The lease runs out (the runner would renew it much later) and the reaper takes the task back.
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute(
                "UPDATE leases SET acquired_at = now() - interval '1 hour', "
                "expires_at = now() - interval '1 second' WHERE task_id = %s",
                (task_id,),
            )
        wait_for(lambda: runs_of(db_url, task_id)[0][1] != "running", what="the reaper")
        refused = httpx.post(url, json=body, headers=headers, timeout=30)
    finally:
        orch.terminate()
    assert refused.status_code == 401
    assert refused.json()["error"]["type"] == "authentication_error"
    assert len(model.model_requests()) == 1  # only the call made while the lease held
    assert KEY not in refused.text


def test_a_provider_refusal_quoting_the_key_reaches_the_agent_without_it(
    env: dict[str, str], home: Path, db_url: str, model: ModelServer, out: Path, tmp_path: Path
) -> None:
    company(env, home, out, tmp_path)
    model.fail(401, 1, "invalid x-api-key: {key}")  # the provider quotes the key it was sent
    task_id = add_task(env, "calls 1 100")
    orch = Orchestrator(env)
    try:
        wait_for(lambda: ended(db_url, task_id), what="end")
    finally:
        orch.terminate()
    ((answer),) = answers(out)
    assert answer["status"] == 401
    assert KEY not in answer["body"] and "[redacted]" in answer["body"]
    assert json.loads(answer["body"])["error"]["type"] == "authentication_error"  # the provider's shape
    assert ledger(db_url, task_id) == []


def test_a_model_off_the_agents_allow_list_is_refused_before_the_provider(
    env: dict[str, str], home: Path, db_url: str, model: ModelServer, out: Path, tmp_path: Path
) -> None:
    company(env, home, out, tmp_path, allowedModels=["claude-haiku-4-5"])
    task_id = add_task(env, "calls 1 100")
    orch = Orchestrator(env)
    try:
        wait_for(lambda: ended(db_url, task_id), what="end")
    finally:
        orch.terminate()
    ((answer),) = answers(out)
    assert answer["status"] == 403
    error = json.loads(answer["body"])["error"]
    assert (error["type"], error["reason"]) == ("permission_error", "model_not_allowed")
    assert model.model_requests() == []


def test_the_request_rate_of_a_run_is_limited(
    env: dict[str, str], home: Path, db_url: str, model: ModelServer, out: Path, tmp_path: Path
) -> None:
    env = {**env, "COMPANY_AGENTS_GATEWAY_RATE_PER_MINUTE": "2"}
    company(env, home, out, tmp_path)
    task_id = add_task(env, "calls 3 100")
    orch = Orchestrator(env)
    try:
        wait_for(lambda: ended(db_url, task_id), what="end")
    finally:
        orch.terminate()
    assert [a["status"] for a in answers(out)] == [200, 200, 429]
    assert json.loads(answers(out)[2]["body"])["error"]["type"] == "rate_limit_error"
    assert len(model.model_requests()) == 2 and len(ledger(db_url, task_id)) == 2


def test_a_subscription_login_passes_through_and_its_usage_is_imputed_at_list_price(
    env: dict[str, str], home: Path, db_url: str, model: ModelServer, out: Path, tmp_path: Path
) -> None:
    setup_company(env, home, adapter_extra={"args": [str(AGENT)], "env": {"GATEWAY_AGENT_OUT": str(out)}})
    task_id = add_task(env, "own")  # no key in the store: the agent's own login
    orch = Orchestrator(env)
    try:
        wait_for(lambda: ended(db_url, task_id), what="end")
    finally:
        orch.terminate()
    assert [a["status"] for a in answers(out)] == [200]
    (request,) = model.model_requests()
    assert request.headers["x-api-key"] == "sk-ant-oat-the-users-own-login"  # passed through untouched
    ((billing, billed, imputed, effective),) = query(
        db_url,
        "SELECT billing, billed_usd, imputed_usd, effective_usd FROM cost_entries WHERE task_id = %s "
        "AND kind = 'llm'",
        task_id,
    )
    assert (billing, billed) == ("subscription", 0)
    assert imputed == effective == price(model.served[0])


def test_with_the_gateway_off_the_agent_gets_no_gateway(
    env: dict[str, str], home: Path, db_url: str, model: ModelServer, out: Path, tmp_path: Path
) -> None:
    env = {**env, "COMPANY_AGENTS_GATEWAY": "off"}
    company(env, home, out, tmp_path)
    task_id = add_task(env, "none")
    orch = Orchestrator(env)
    try:
        wait_for(lambda: out.with_suffix(".env").exists(), what="the agent")
        wait_for(lambda: runs_of(db_url, task_id)[0][1] != "running", what="end")
    finally:
        orch.terminate()
    assert "CA_GATEWAY_URL" not in json.loads(out.with_suffix(".env").read_text())


# -- the real CLIs -----------------------------------------------------------------------------------

CLI_MODELS = {"claude-code": "claude-sonnet-4-5", "codex": "gpt-5.1", "gemini-cli": "gemini-2.5-flash"}
CLI_KEYS = {"claude-code": "ANTHROPIC_API_KEY", "codex": "OPENAI_API_KEY", "gemini-cli": "GEMINI_API_KEY"}


def sent_key(request: Any) -> str:
    headers = {k.lower(): v for k, v in request.headers.items()}
    return str(
        headers.get("x-api-key")
        or headers.get("x-goog-api-key")
        or headers.get("authorization", "").removeprefix("Bearer ")
    )


def agent_environs(run_id: str) -> list[dict[str, str]]:
    """The environment of every process of the run (the CLI and its children), read from /proc."""
    found = []
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            environ = proc.environ()
            if environ.get("CA_RUN_ID") == run_id:
                found.append(environ)
    return found


@pytest.mark.parametrize("kind", list(CLI_MODELS))
def test_a_cli_goes_through_the_gateway_holding_only_its_run_token_and_is_metered_once(
    kind: str, env: dict[str, str], home: Path, db_url: str, model: ModelServer
) -> None:
    cli_binary(kind)
    model.script.model_version = CLI_MODELS[kind]
    env = {k: v for k, v in env.items() if k != "COMPANY_AGENTS_ISOLATION"}  # as a user runs it
    cli(env, "new", "--name", "Acme", "--teams", "Eng")
    set_key(env, CLI_KEYS[kind])
    hire = ["--role", "writes code", "--adapter", kind, "--model", CLI_MODELS[kind], "--team", "Eng"]
    cli(env, "agent", "hire", "--company", "acme", "--name", "coder", *hire)
    model.hold()  # the first answer waits: the CLI is alive with its environment to read
    task_id = add_task(env, "write hello", "--keep")
    orch = Orchestrator(env)
    try:
        wait_for(model.holding.is_set, timeout=90, what="the first model call")
        (run_id,) = [str(r[0]) for r in query(db_url, "SELECT id FROM runs WHERE task_id = %s", task_id)]
        environs = agent_environs(run_id)
        model.release()
        wait_for(lambda: status_of(db_url, task_id) == "review", timeout=90, what="review")
        wait_for(lambda: "agent exited" in run_log(home, run_id), what="the CLI's exit")
    finally:
        model.release()
        orch.terminate()
    assert environs, "no process of the run found"
    for environ in environs:
        assert KEY not in json.dumps(environ)
        assert environ.get(CLI_KEYS[kind], environ["CA_LEASE_TOKEN"]) == environ["CA_LEASE_TOKEN"]
    (workspace,) = query(db_url, "SELECT workspace_path FROM runs WHERE id = %s", run_id)[0]
    for path in Path(workspace).rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path
    # Every call the provider saw carried the store's key, added by the gateway.
    calls = model.model_requests()
    assert calls and all(sent_key(r) == KEY for r in calls)
    # The ledger is what the provider served, once: the gateway's entries only, none parsed from the CLI.
    rows = ledger(db_url, task_id)
    assert rows and all(str(r[5]).startswith("gateway:") for r in rows)
    expected = tuple(
        sum(col)
        for col in zip(
            *[
                (u.input, u.output, u.cache_read, u.cache_write if kind == "claude-code" else 0)
                for u in model.served
            ],
            strict=True,
        )
    )
    assert tuple(sum(r[i] for r in rows) for i in range(4)) == expected
    assert len(rows) == len(model.served)


def status_of(db_url: str, task_id: str) -> str:
    return str(query(db_url, "SELECT status FROM tasks WHERE id = %s", task_id)[0][0])


def run_log(home: Path, run_id: str) -> str:
    path = home / "logs" / "runs" / f"{run_id}.log"
    return path.read_text() if path.exists() else ""
