"""The committed OpenAPI document is the app's, every operation has a chosen id and declares its errors."""

from __future__ import annotations

import json
import re

from company_agents.api import openapi


def test_committed_openapi_is_current() -> None:
    committed = openapi.DEFAULT_OUTPUT.read_text(encoding="utf-8")
    assert committed == openapi.render(), f"docs/openapi.json is stale: run `{openapi.REGENERATE}`"


def test_operations_have_explicit_ids_and_error_statuses() -> None:
    document = json.loads(openapi.render())
    seen: set[str] = set()
    for path, operations in document["paths"].items():
        assert path.startswith("/v1/"), path  # /healthz, HTML and SSE routes stay out
        for method, operation in operations.items():
            op_id = operation["operationId"]
            assert re.fullmatch(r"[a-z][A-Za-z]+", op_id), (method, path, op_id)
            assert op_id not in seen
            seen.add(op_id)
            assert {"401", "422", "503"} <= operation["responses"].keys(), op_id
            assert operation["security"] == [{"HTTPBearer": []}], op_id
