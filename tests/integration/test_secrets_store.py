"""The secret store: encryption at rest, company isolation, wrong keys, audit without values."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import psycopg
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from company_agents import companies, integrations, secrets_store
from company_agents.db.database import libpq_url, sqlalchemy_url
from company_agents.db.schema import audit_events, secrets
from company_agents.errors import Conflict, MasterKeyMismatch, NotFound, SecretDecryptError
from company_agents.master_key import MasterKey

PLAINTEXT = "sk-ant-SUPER-SECRET-VALUE-4242"


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_async_engine(sqlalchemy_url(db_url), poolclass=NullPool)
    yield eng
    await eng.dispose()


@pytest.fixture
def key() -> MasterKey:
    return MasterKey(os.urandom(32), "test")


async def two_companies(engine: AsyncEngine) -> tuple[UUID, UUID]:
    async with engine.begin() as conn:
        a = (await companies.create_company(conn, name="Acme"))["id"]
        b = (await companies.create_company(conn, name="Globex"))["id"]
    return a, b


async def store(
    engine: AsyncEngine, key: MasterKey, company_id: UUID, name: str, value: str
) -> dict[str, Any]:
    async with engine.begin() as conn:
        return await secrets_store.create_secret(conn, key, company_id=company_id, name=name, value=value)


async def reveal(engine: AsyncEngine, key: MasterKey, company_id: UUID, name: str) -> str:
    async with engine.begin() as conn:
        return await secrets_store.reveal(conn, key, company_id, name)


async def test_roundtrip_metadata_and_last_used(engine: AsyncEngine, key: MasterKey) -> None:
    a, _ = await two_companies(engine)
    meta = await store(engine, key, a, "anthropic_api_key", PLAINTEXT)
    assert PLAINTEXT not in repr(meta) and meta["key_id"] == key.key_id
    assert meta["last_used_at"] is None
    assert await reveal(engine, key, a, "anthropic_api_key") == PLAINTEXT
    async with engine.connect() as conn:
        (listed,) = await secrets_store.list_secrets(conn, a)
    assert listed["last_used_at"] is not None
    assert set(listed) == {
        "id",
        "company_id",
        "name",
        "description",
        "key_id",
        "created_at",
        "updated_at",
        "last_used_at",
    }


async def test_plaintext_is_absent_from_the_table_and_its_file(
    engine: AsyncEngine, key: MasterKey, db_url: str
) -> None:
    a, _ = await two_companies(engine)
    await store(engine, key, a, "token", PLAINTEXT)
    needle = PLAINTEXT.encode()
    with psycopg.connect(libpq_url(db_url), autocommit=True) as conn:
        row = conn.execute("SELECT value, nonce, t::text FROM secrets t").fetchone()
        assert row is not None
        value, nonce, as_text = row
        assert needle not in bytes(value) and needle not in bytes(nonce) and PLAINTEXT not in as_text
        assert len(bytes(nonce)) == 12
        conn.execute("CHECKPOINT")
        heap = conn.execute("SELECT pg_read_binary_file(pg_relation_filepath('secrets'))").fetchone()
        assert heap is not None and bytes(row[0])[:16] in bytes(heap[0])  # we read the right file
        assert needle not in bytes(heap[0])
        audit_text = conn.execute("SELECT string_agg(t::text, '') FROM audit_events t").fetchone()
        assert audit_text is not None and PLAINTEXT not in audit_text[0] and "token" in audit_text[0]


async def test_every_write_gets_a_fresh_nonce(engine: AsyncEngine, key: MasterKey) -> None:
    a, _ = await two_companies(engine)
    await store(engine, key, a, "token", PLAINTEXT)
    async with engine.connect() as conn:
        first = (await conn.execute(select(secrets.c.value, secrets.c.nonce))).one()
    async with engine.begin() as conn:
        await secrets_store.rotate_secret(conn, key, company_id=a, name="token", value=PLAINTEXT)
    async with engine.connect() as conn:
        second = (await conn.execute(select(secrets.c.value, secrets.c.nonce))).one()
        actions = (await conn.execute(select(audit_events.c.action).order_by(audit_events.c.id))).scalars()
        assert [x for x in actions if x.startswith("secret.")] == ["secret.created", "secret.rotated"]
    assert first.nonce != second.nonce and first.value != second.value
    assert await reveal(engine, key, a, "token") == PLAINTEXT


async def test_one_company_cannot_read_anothers_secret(
    engine: AsyncEngine, key: MasterKey, db_url: str
) -> None:
    a, b = await two_companies(engine)
    meta = await store(engine, key, a, "token", PLAINTEXT)
    with pytest.raises(NotFound) as caught:
        await reveal(engine, key, b, "token")
    assert PLAINTEXT not in str(caught.value)
    with pytest.raises(NotFound):
        async with engine.begin() as conn:
            await secrets_store.reveal_id(conn, key, b, meta["id"])
    # A row copied into company B (by someone with database access) does not decrypt there.
    with psycopg.connect(libpq_url(db_url), autocommit=True) as conn:
        conn.execute(
            "INSERT INTO secrets (company_id, name, value, nonce, key_id) "
            "SELECT %s, name, value, nonce, key_id FROM secrets WHERE company_id = %s",
            (b, a),
        )
    with pytest.raises(SecretDecryptError) as decrypt_error:
        await reveal(engine, key, b, "token")
    assert PLAINTEXT not in str(decrypt_error.value)


async def test_wrong_master_key_is_refused_and_changes_nothing(engine: AsyncEngine, key: MasterKey) -> None:
    a, _ = await two_companies(engine)
    await store(engine, key, a, "token", PLAINTEXT)
    wrong = MasterKey(os.urandom(32), "wrong")

    async def counts() -> tuple[int, int]:
        async with engine.connect() as conn:
            n_secrets = (await conn.execute(select(func.count()).select_from(secrets))).scalar_one()
            n_events = (await conn.execute(select(func.count()).select_from(audit_events))).scalar_one()
        return n_secrets, n_events

    before = await counts()
    with pytest.raises(MasterKeyMismatch, match=wrong.key_id):
        await reveal(engine, wrong, a, "token")
    with pytest.raises(MasterKeyMismatch):
        await store(engine, wrong, a, "other", "x")
    with pytest.raises(MasterKeyMismatch):
        async with engine.begin() as conn:
            await secrets_store.rotate_secret(conn, wrong, company_id=a, name="token", value="x")
    assert await counts() == before
    assert await reveal(engine, key, a, "token") == PLAINTEXT


async def test_altered_ciphertext_fails_to_decrypt(engine: AsyncEngine, key: MasterKey, db_url: str) -> None:
    a, _ = await two_companies(engine)
    await store(engine, key, a, "token", PLAINTEXT)
    with psycopg.connect(libpq_url(db_url), autocommit=True) as conn:
        conn.execute("UPDATE secrets SET value = set_byte(value, 0, get_byte(value, 0) # 1)")
    with pytest.raises(SecretDecryptError):
        await reveal(engine, key, a, "token")


async def test_delete_audits_and_is_refused_while_an_integration_uses_it(
    engine: AsyncEngine, key: MasterKey
) -> None:
    a, _ = await two_companies(engine)
    await store(engine, key, a, "gh", PLAINTEXT)
    async with engine.begin() as conn:
        await integrations.add_integration(
            conn, key, company_id=a, kind="github", name="main", secret_name="gh"
        )
    with pytest.raises(Conflict, match="integration"):
        async with engine.begin() as conn:
            await secrets_store.delete_secret(conn, company_id=a, name="gh")
    async with engine.begin() as conn:
        await integrations.remove_integration(conn, company_id=a, name="main")
        await secrets_store.delete_secret(conn, company_id=a, name="gh")
    async with engine.connect() as conn:
        assert await secrets_store.list_secrets(conn, a) == []
        last = (
            await conn.execute(
                select(audit_events.c.action, audit_events.c.payload).order_by(audit_events.c.id.desc())
            )
        ).first()
    assert last is not None and last.action == "secret.deleted" and last.payload == {"name": "gh"}


async def test_duplicate_names_conflict(engine: AsyncEngine, key: MasterKey) -> None:
    a, b = await two_companies(engine)
    await store(engine, key, a, "token", PLAINTEXT)
    await store(engine, key, b, "token", "other")  # names are per company
    with pytest.raises(Conflict, match="secret rotate"):
        await store(engine, key, a, "token", "again")


async def test_resolve_env_injects_secret_references(engine: AsyncEngine, key: MasterKey) -> None:
    a, b = await two_companies(engine)
    await store(engine, key, a, "anthropic_api_key", PLAINTEXT)
    env = {"ANTHROPIC_API_KEY": {"secret": "anthropic_api_key"}, "MODE": "fast"}
    async with engine.begin() as conn:
        resolved = await secrets_store.resolve_env(conn, key, a, env)
    assert resolved == {"ANTHROPIC_API_KEY": PLAINTEXT, "MODE": "fast"}
    with pytest.raises(NotFound):
        async with engine.begin() as conn:
            await secrets_store.resolve_env(conn, key, b, env)
