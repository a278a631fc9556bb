"""The example writer agent's conventions: how a task body names its file, and what it writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from company_agents.examples.writer_agent import (
    AgentFailure,
    inside,
    parse_brief,
    render_document,
    revision_note,
    slugify,
)


def test_directives_lead_the_body_and_the_rest_is_content() -> None:
    brief = parse_brief("Write it", "\nfile: docs/hello.md\ndelay: 1.5\n\nHello.\nfile: not a directive\n")
    assert brief.path == "docs/hello.md"
    assert brief.delay == 1.5
    assert brief.summarise is None and brief.fail is None
    assert brief.content == "Hello.\nfile: not a directive"


def test_no_directives_means_the_whole_body_is_content() -> None:
    brief = parse_brief("Write a haiku", "Rows wait in the queue;\nNote: fine\n")
    assert brief.path is None
    assert brief.content == "Rows wait in the queue;\nNote: fine"
    assert slugify("Write a haiku about PostgreSQL!") == "write-a-haiku-about-postgresql"
    assert slugify("!!!") == "output"


@pytest.mark.parametrize(
    ("title", "body", "target"),
    [
        ("Summarise the files in .company-agents", "", ".company-agents"),
        ("summarize all the files under src/app.", "", "src/app"),
        ("Tidy up", "summarise: notes", "notes"),
    ],
)
def test_summarise_from_the_title_or_a_directive(title: str, body: str, target: str) -> None:
    assert parse_brief(title, body).summarise == target


def test_bad_delay_is_a_failure() -> None:
    with pytest.raises(AgentFailure, match="delay"):
        parse_brief("x", "delay: soon")


def test_markdown_gets_a_title_heading_other_files_do_not() -> None:
    assert render_document("Hello", "Body", "a.md") == "# Hello\n\nBody\n"
    assert render_document("Hello", "# Own title\nBody", "a.md") == "# Own title\nBody\n"
    assert render_document("Hello", "", "a.md") == "# Hello\n"
    assert render_document("Hello", "print(1)", "a.py") == "print(1)\n"
    assert "> please shorten" in revision_note("please shorten", 2)


def test_paths_stay_inside_the_workspace_and_out_of_reserved_dirs(tmp_path: Path) -> None:
    assert inside(tmp_path, "docs/a.md", for_writing=True) == tmp_path.resolve() / "docs" / "a.md"
    for bad in ("../a.md", "/etc/passwd", "docs/../../a.md", ".git/config", ".company-agents/task.json", "."):
        with pytest.raises(AgentFailure):
            inside(tmp_path, bad, for_writing=True)
    assert inside(tmp_path, ".company-agents", for_writing=False) == tmp_path.resolve() / ".company-agents"
