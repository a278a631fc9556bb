from __future__ import annotations

from company_agents.db import locks


def test_advisory_lock_keys_are_distinct_and_fit_bigint() -> None:
    keys = {name: value for name, value in vars(locks).items() if name.isupper()}
    assert len(set(keys.values())) == len(keys), keys
    assert all(-(2**63) <= v < 2**63 for v in keys.values())
