"""The repository stands alone: the command reference is current, and nothing points outside it."""

from __future__ import annotations

import re
from pathlib import Path

from company_agents.cli import reference

ROOT = Path(__file__).resolve().parents[2]

# Paths of the workspace this project was written in, not of the repository: a reader of a clone has none.
# The sibling folder is named in pieces, so this file does not itself point outside the repository.
SIBLING = "shared"
OUTSIDE = re.compile(rf"\.\./{SIBLING}|{SIBLING}/reference|/work/|\bDESIGN(\.md)? §|\bDESIGN\.md|\bSTYLE\.md")
SCANNED = ("README.md", "CONTRIBUTING.md", "docs", "src", "tests", "bench", "scripts", "pyproject.toml")
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def _files() -> list[Path]:
    found = []
    for name in SCANNED:
        path = ROOT / name
        if path.is_file():
            found.append(path)
        elif path.is_dir():
            found.extend(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    return [p for p in found if p != Path(__file__).resolve() and p.suffix not in (".pyc", ".gz", ".tar")]


def test_cli_reference_is_current() -> None:
    current = (ROOT / reference.DEFAULT_OUTPUT).read_text(encoding="utf-8")
    assert current == reference.render(), f"docs/cli.md is stale: run `{reference.REGENERATE}`"


def test_nothing_refers_to_a_path_outside_the_repository() -> None:
    offenders = []
    for path in _files():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            if OUTSIDE.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()[:100]}")
    assert offenders == [], "cite docs/design.md §n or another file in the repository:\n" + "\n".join(
        offenders
    )


def test_markdown_links_resolve_inside_the_repository() -> None:
    broken = []
    for path in _files():
        if path.suffix != ".md":
            continue
        for target in LINK.findall(path.read_text(encoding="utf-8")):
            if re.match(r"^[a-z]+:", target):  # http:, https:, mailto:
                continue
            resolved = (path.parent / target).resolve()
            if not resolved.is_relative_to(ROOT) or not resolved.exists():
                broken.append(f"{path.relative_to(ROOT)}: {target}")
    assert broken == []
