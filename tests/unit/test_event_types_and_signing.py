"""Public event types, subscription patterns, and Standard Webhooks signatures."""

from __future__ import annotations

import pytest

from company_agents.errors import InvalidInput
from company_agents.events.feed import parse_cursor
from company_agents.events.types import FALLBACK, check_patterns, event_type, matches
from company_agents.webhooks.endpoints import check_url
from company_agents.webhooks.signing import headers, new_secret, signature


def test_standard_webhooks_reference_vector() -> None:
    # The example of the Standard Webhooks specification and its reference libraries' tests.
    assert (
        signature(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            b'{"test": 2432232314}',
        )
        == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    )


def test_new_secrets_are_distinct_and_sign() -> None:
    a, b = new_secret(), new_secret()
    assert a != b and a.startswith("whsec_")
    sent = headers(a, "msg_1", 1, b"{}")
    assert sent["webhook-signature"] != headers(b, "msg_1", 1, b"{}")["webhook-signature"]
    assert sent["webhook-id"] == "msg_1" and sent["webhook-timestamp"] == "1"


def test_types_and_patterns() -> None:
    assert event_type("task.created") == "task.created"
    assert event_type("task.claimed") == "run.started"
    assert event_type("task.requeued") == "task.updated"
    assert event_type("budget.breach.hard") == "budget.breached"
    assert event_type("secret.created") == FALLBACK
    assert matches(["task.*"], "task.updated") and not matches(["task.*"], "run.started")
    assert matches(["*"], "audit.recorded")
    assert check_patterns(["task.*", " approval.* ", "budget.breached"]) == [
        "task.*",
        "approval.*",
        "budget.breached",
    ]
    for bad in [[], [""], ["tasks.*"], ["task.%"], ["task"]]:
        with pytest.raises(InvalidInput):
            check_patterns(bad)


@pytest.mark.parametrize(
    "url",
    ["ftp://a/b", "file:///etc/passwd", "javascript:alert(1)", "//host/x", "http://", "https://u:p@h/x"],
)
def test_bad_urls_are_refused(url: str) -> None:
    with pytest.raises(InvalidInput):
        check_url(url)


def test_good_urls_and_cursors() -> None:
    assert check_url(" https://example.com/h?x=1 ") == "https://example.com/h?x=1"
    assert check_url("http://127.0.0.1:8080/hook") == "http://127.0.0.1:8080/hook"
    assert parse_cursor("") is None and parse_cursor("7") == 7
    for bad in ["-1", "1e3", "9" * 19]:
        with pytest.raises(InvalidInput):
            parse_cursor(bad)
