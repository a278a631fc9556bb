"""The pinned agent CLIs for tests: installed by scripts/install-agent-clis (CI runs it from .ci/run).

A missing CLI fails the test with the reason when ``CI`` is set, and skips it with the reason otherwise.
"""

from __future__ import annotations

import os

import pytest

from company_agents.adapters.clis.binaries import PINNED, cache_dir, cached_binary


def cli_binary(kind: str) -> str:
    environ = dict(os.environ)
    found = cached_binary(kind, environ)
    if found is not None:
        return str(found)
    reason = (
        f"{PINNED[kind].spec} is not installed in {cache_dir(environ)}: run scripts/install-agent-clis "
        "(needs npm and the registry)"
    )
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)
