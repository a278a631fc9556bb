"""The inbox in a real browser: an agent asks for an approval while the board has the inbox open, the
card appears without a reload, the board approves it from the card, and the agent's next run
continues the task to review. Screenshots go to test-artifacts/dashboard-inbox/."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.acceptance.orchestrator import Orchestrator, cli, wait_for
from tests.acceptance.test_dashboard_browser import ARTIFACTS, CHROMIUM, _browser_or_skip, _dashboard_link

pytestmark = pytest.mark.slow  # a real `up` and a browser

ASKER = Path(__file__).resolve().parents[1] / "integration" / "approval_agent.py"
ACTION = "Publish the release notes"  # what approval_agent.py asks for
SHOTS = ARTIFACTS.parent / "dashboard-inbox"


@pytest.fixture
def orchestrator(cli_env: dict[str, str], home: Path) -> Iterator[Orchestrator]:
    home.mkdir(parents=True, exist_ok=True)
    asker = {"type": "process", "binary": sys.executable, "args": [str(ASKER)], "protocol": "json-lines"}
    (home / "config.json").write_text(json.dumps({"adapters": {"asker": asker}}))
    env = {**cli_env, "COMPANY_AGENTS_ISOLATION": "none", "COMPANY_AGENTS_SCHEDULER_POLL_SECONDS": "0.2"}
    orch = Orchestrator(env)
    try:
        yield orch
    finally:
        orch.terminate()


def _task(env: dict[str, str], task_id: str) -> dict[str, object]:
    found: dict[str, object] = cli(env, "task", "show", task_id)
    return found


def test_an_approval_card_arrives_live_and_approving_it_lets_the_agent_continue(
    orchestrator: Orchestrator,
) -> None:
    sync_playwright = _browser_or_skip()
    env = orchestrator.env
    base = f"http://127.0.0.1:{env['COMPANY_AGENTS_DASHBOARD_PORT']}"
    link = _dashboard_link(orchestrator)
    cli(env, "new", "--name", "Acme", "--teams", "Eng")
    cli(
        env,
        *("agent", "hire", "--company", "acme", "--name", "ada", "--role", "releases"),
        *("--adapter", "asker", "--team", "Eng", "--approvals", "external_send"),
    )
    if SHOTS.exists():
        shutil.rmtree(SHOTS)
    SHOTS.mkdir(parents=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 900, "height": 1000})
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        try:
            page.goto(link)
            page.wait_for_url(f"{base}/")
            page.goto(f"{base}/c/acme/inbox")
            page.wait_for_selector("text=No approval waiting.")
            # A marker a reload would wipe: the card must come by the page's live stream.
            page.evaluate("window.stillTheSamePage = true")

            task_id = cli(
                env,
                *("task", "create", "--company", "acme", "--team", "Eng"),
                *("--title", "Ship the release", "--body", "notes"),
            )["id"]
            card = page.locator(".card.approval", has_text=ACTION)
            card.wait_for(timeout=60_000)
            assert page.evaluate("window.stillTheSamePage === true"), "the inbox was reloaded"
            assert "the release is tagged" in card.inner_text()  # the agent's reasoning is shown
            # The expiry counts down in the card ("in 3h 59m", "in 4m 12s"), not a fixed timestamp.
            page.wait_for_function(
                "() => /^in \\d+[dhm] \\d+[hms]$/.test("
                "document.querySelector('.card.approval time[data-countdown]').textContent)",
                timeout=5_000,
            )
            page.screenshot(path=str(SHOTS / "1-card-arrived.png"), full_page=True)
            wait_for(lambda: _task(env, task_id)["status"] == "blocked", what="the task waits on the answer")

            card.get_by_role("button", name="Approve", exact=True).click()
            page.wait_for_selector("text=No approval waiting.", timeout=30_000)
            wait_for(lambda: _task(env, task_id)["status"] == "review", what="the agent's next run completes")
            task = _task(env, task_id)
            output = task["output"]
            assert isinstance(output, dict) and output["output"]["published"] is True
            page.goto(f"{base}/c/acme/tasks/{task_id}")
            page.wait_for_selector("#task-status:has-text('review')")
            page.screenshot(path=str(SHOTS / "2-task-in-review.png"), full_page=True)
        finally:
            browser.close()
    assert not [e for e in errors if "Content Security Policy" in e], errors
