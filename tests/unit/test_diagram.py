from __future__ import annotations

from pathlib import Path

from company_agents.db.diagram import diagram_path, render_mermaid
from company_agents.db.schema import metadata

ROOT = Path(__file__).resolve().parents[2]


def test_er_diagram_in_docs_is_current() -> None:
    path = diagram_path(ROOT)
    assert path.exists(), "run `company-agents db diagram`"
    assert path.read_text() == render_mermaid(), (
        "docs/er-diagram.md is stale: run `company-agents db diagram`"
    )


def test_diagram_names_every_table_and_foreign_key() -> None:
    text = render_mermaid()
    for table in metadata.tables.values():
        assert f"    {table.name} {{" in text
        for fk in table.foreign_key_constraints:
            assert f"{fk.referred_table.name} " in text
    assert 'tasks ||--o{ runs : "task_id"' in text
