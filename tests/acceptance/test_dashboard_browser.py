"""The dashboard in a real browser (Debian's chromium, driven by Playwright) against a real `up` in
embedded mode with the example writer agent: everything from the forms, and the task's move to
review arriving live, without a reload. Screenshots go to test-artifacts/dashboard/."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from company_agents.demo import ADAPTER_NAME, example_adapter
from tests.acceptance.orchestrator import Orchestrator, cli

pytestmark = pytest.mark.slow  # a real `up` and a browser

CHROMIUM = Path(os.environ.get("COMPANY_AGENTS_TEST_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "dashboard"


def _browser_or_skip() -> Any:
    """Playwright's sync API; skipped locally without a browser, a failure in CI (``CI`` set)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if os.environ.get("CI"):
            raise
        pytest.skip("playwright is not installed (pip install -e '.[dev]')")
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"no browser at {CHROMIUM}: .ci/run installs Debian's chromium")
        pytest.skip(f"no browser at {CHROMIUM} (apt-get install chromium)")
    return sync_playwright


@pytest.fixture
def orchestrator(cli_env: dict[str, str], home: Path) -> Iterator[Orchestrator]:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.json").write_text(json.dumps({"adapters": {ADAPTER_NAME: example_adapter()}}))
    env = {**cli_env, "COMPANY_AGENTS_ISOLATION": "none", "COMPANY_AGENTS_SCHEDULER_POLL_SECONDS": "0.2"}
    orch = Orchestrator(env)
    try:
        yield orch
    finally:
        orch.terminate()


def _dashboard_link(orch: Orchestrator) -> str:
    """The dashboard line of `up`'s start-up summary (on stderr)."""
    assert orch.proc.stderr is not None
    for line in orch.proc.stderr:
        if line.strip().startswith("dashboard"):
            return line.split()[-1]
    raise AssertionError("up printed no dashboard link")


def test_from_the_forms_to_an_approved_task_live(orchestrator: Orchestrator) -> None:
    sync_playwright = _browser_or_skip()
    base = f"http://127.0.0.1:{orchestrator.env['COMPANY_AGENTS_DASHBOARD_PORT']}"
    link = _dashboard_link(orchestrator)
    assert link.startswith(f"{base}/?token=")
    # Without the link's cookie, nothing: an agent on the same loopback cannot drive the dashboard.
    assert httpx.get(base, timeout=5).status_code == 401
    if ARTIFACTS.exists():
        shutil.rmtree(ARTIFACTS)
    ARTIFACTS.mkdir(parents=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 900, "height": 1000})
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        try:
            page.goto(link)
            page.wait_for_url(f"{base}/")  # the token left the address bar for a cookie
            page.get_by_label("Name", exact=True).fill("Acme")
            page.get_by_label("Teams (comma-separated)").fill("Eng")
            page.get_by_role("button", name="Create company").click()
            page.wait_for_url(f"{base}/c/acme")
            page.screenshot(path=str(ARTIFACTS / "1-overview.png"), full_page=True)

            page.get_by_role("link", name="Agents", exact=True).click()
            page.get_by_label("Name", exact=True).fill("ada")
            page.get_by_label("Role").fill("Technical writer")
            page.get_by_label("Adapter").fill(ADAPTER_NAME)
            page.locator("select[name=team]").select_option("Eng")
            page.get_by_role("button", name="Hire").click()
            page.wait_for_selector("tr[data-agent='ada'] >> text=idle")
            page.screenshot(path=str(ARTIFACTS / "2-agents.png"), full_page=True)

            page.get_by_role("link", name="Tasks", exact=True).click()
            page.get_by_label("Title").fill("Write the notes")
            page.get_by_label("Body").fill("file: notes.md\ndelay: 1\nHello from the dashboard.")
            page.locator("select[name=team]").select_option("Eng")
            page.get_by_role("button", name="Create task").click()
            page.wait_for_url(f"{base}/c/acme/tasks/*")
            task_url = page.url
            # No reload from here: the page's SSE stream swaps the state in as the agent works.
            page.wait_for_selector("#task-status:has-text('review')", timeout=60_000)
            assert page.url == task_url
            page.screenshot(path=str(ARTIFACTS / "3-task-in-review.png"), full_page=True)

            # A live swap while someone types a rejection keeps what they typed.
            feedback = page.get_by_label("Feedback")
            feedback.fill("Half-typed feedback")
            page.evaluate(
                "window.swaps = 0; document.body.addEventListener('htmx:afterSwap', () => window.swaps++)"
            )
            cli(orchestrator.env, "task", "create", "--company", "acme", "--title", "Another", "--body", "x")
            page.wait_for_function("() => window.swaps > 0", timeout=30_000)
            assert feedback.input_value() == "Half-typed feedback"

            page.get_by_role("button", name="Approve").click()
            page.wait_for_selector("#task-status:has-text('done')")
            page.screenshot(path=str(ARTIFACTS / "4-task-done.png"), full_page=True)

            page.get_by_role("link", name="Costs", exact=True).click()
            page.wait_for_selector("#by-agent:has-text('ada'), #unpriced")
            page.set_viewport_size({"width": 390, "height": 900})  # a narrow window still reads
            page.screenshot(path=str(ARTIFACTS / "5-costs-narrow.png"), full_page=True)
        finally:
            browser.close()
    # The CSP forbids inline script: a violation would show here as a console error.
    assert not [e for e in errors if "Content Security Policy" in e], errors


def test_the_agent_org_activity_memory_and_settings_pages(orchestrator: Orchestrator) -> None:
    sync_playwright = _browser_or_skip()
    base = f"http://127.0.0.1:{orchestrator.env['COMPANY_AGENTS_DASHBOARD_PORT']}"
    link = _dashboard_link(orchestrator)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1000, "height": 1000})
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        try:
            page.goto(link)
            page.wait_for_url(f"{base}/")
            page.get_by_label("Name", exact=True).fill("Acme")
            page.get_by_label("Teams (comma-separated)").fill("Eng, Ops")
            page.get_by_role("button", name="Create company").click()
            page.wait_for_url(f"{base}/c/acme")
            page.get_by_role("link", name="Agents", exact=True).click()
            for name, team, boss in (("ada", "Eng", ""), ("bob", "Eng", "ada"), ("cy", "Ops", "ada")):
                page.get_by_label("Name", exact=True).fill(name)
                page.get_by_label("Role").fill("Writer")
                page.get_by_label("Adapter").fill(ADAPTER_NAME)
                page.locator("select[name=team]").select_option(team)
                if boss:
                    page.get_by_label("Reports to").select_option(boss)
                page.get_by_role("button", name="Hire").click()
                page.wait_for_selector(f"tr[data-agent='{name}']")

            # The agent page, by keyboard: its link, then pause from the page itself.
            page.get_by_role("link", name="bob", exact=True).focus()
            page.keyboard.press("Enter")
            page.wait_for_url(f"{base}/c/acme/agents/bob")
            page.get_by_role("button", name="Pause bob").click()
            page.wait_for_selector("#agent-status:has-text('paused')")
            page.get_by_role("button", name="Rotate the identity token of bob").click()
            page.wait_for_selector("#rotated")
            page.screenshot(path=str(ARTIFACTS / "pages-1-agent.png"), full_page=True)

            page.get_by_role("link", name="Org chart", exact=True).click()
            page.wait_for_selector("svg.org g.agent[data-agent='cy']")
            assert page.locator("svg.org path.reports").count() == 2
            page.screenshot(path=str(ARTIFACTS / "pages-2-org.png"), full_page=True)

            page.get_by_role("link", name="Activity", exact=True).click()
            page.get_by_label("Search").fill("category:agent since:1h")
            page.get_by_label("Search").press("Enter")
            page.wait_for_selector("#activity td:has-text('agent.paused')")
            assert page.locator("#activity td:has-text('task.')").count() == 0
            page.screenshot(path=str(ARTIFACTS / "pages-3-activity.png"), full_page=True)

            page.get_by_role("link", name="Memory", exact=True).click()
            page.wait_for_selector("#memory")
            page.screenshot(path=str(ARTIFACTS / "pages-4-memory.png"), full_page=True)

            page.get_by_role("link", name="Settings", exact=True).click()
            page.get_by_label("Name", exact=True).first.fill("vendor_key")
            page.get_by_label("Value", exact=True).fill("sk-browser-never-shown-0001")
            page.get_by_role("button", name="Set secret").click()
            page.wait_for_selector("tr[data-secret='vendor_key']")
            assert "sk-browser-never-shown-0001" not in page.content()
            page.screenshot(path=str(ARTIFACTS / "pages-5-settings.png"), full_page=True)
        finally:
            browser.close()
    assert not [e for e in errors if "Content Security Policy" in e], errors
