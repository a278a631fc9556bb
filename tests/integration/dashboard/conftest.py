"""The ``dash`` fixture: the dashboard app on the test database, entered through its access link."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.integration.dashboard.harness import Dash, open_dash


@pytest.fixture
async def dash(db_url: str, tmp_path: Any) -> AsyncIterator[Dash]:
    async for opened in open_dash(db_url, tmp_path):
        yield opened
