"""The head revision the package checks against is the newest migration it ships."""

from __future__ import annotations

from company_agents.db.migrate import head_revision
from company_agents.db.revision import HEAD_REVISION, at_head


def test_head_revision_constant_is_the_newest_migration() -> None:
    assert head_revision() == HEAD_REVISION, (
        f"db/revision.py names {HEAD_REVISION} as the head but the newest migration is {head_revision()}: "
        "update HEAD_REVISION with the migration"
    )


def test_only_the_head_counts_as_up_to_date() -> None:
    status = at_head(HEAD_REVISION)
    assert status is not None and status.up_to_date and status.current == HEAD_REVISION
    assert at_head(None) is None
    assert at_head("0001") is None
