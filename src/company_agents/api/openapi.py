"""The committed OpenAPI document of ``/v1`` (``docs/openapi.json``): write it, or ``--check`` it.

A test fails when the app's schema differs from the committed file, so every change within ``/v1``
is a deliberate one, reviewed in the diff (additive only within a version: docs/api.md).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

REGENERATE = "python -m company_agents.api.openapi"
DEFAULT_OUTPUT = Path("docs/openapi.json")


def schema() -> dict[str, Any]:
    """The app's OpenAPI document; building the app opens no connection."""
    from company_agents.api.app import create_app
    from company_agents.db.database import Database
    from company_agents.settings import Settings

    settings = Settings()
    app = create_app(Database(settings=settings, url="postgresql://openapi@127.0.0.1:1/none"), settings)
    document: dict[str, Any] = app.openapi()
    return document


def render() -> str:
    return json.dumps(schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=REGENERATE, description="Write (or --check) docs/openapi.json.")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--check", action="store_true", help="exit 1 when the file is stale")
    args = parser.parse_args(argv)
    text = render()
    current = args.output.read_text(encoding="utf-8") if args.output.exists() else None
    if args.check:
        if current != text:
            sys.stderr.write(f"{args.output} is stale: run `{REGENERATE}`\n")
            return 1
        return 0
    if current != text:
        args.output.write_text(text, encoding="utf-8")
    sys.stdout.write(f"{args.output} {'updated' if current != text else 'already up to date'}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
