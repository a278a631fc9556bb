"""Filling a database with rows in every table, awkward values included, for transfer and backup tests."""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import psycopg
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from psycopg.types.json import Jsonb

from company_agents.db.database import open_database
from company_agents.settings import Settings
from company_agents.transfer import Manifest, export_database

# Text that COPY must escape, and JSON that must survive byte for byte.
AWKWARD = "tab\there\nnew line \\ backslash «ünïcödé» 🦆 \r end"
AWKWARD_JSON = {"quote": 'a"b', "backslash": "c\\d", "nested": [1, 2.5, None, True], "emoji": "🦆"}


@dataclass
class Populated:
    key: bytes
    plaintexts: dict[UUID, bytes]


def populate(
    url: str, *, companies: int = 2, tag: str = "a", key: bytes | None = None, key_id: str = "k"
) -> Populated:
    """Rows in all thirteen tables, including the teams↔agents cycle and self-references."""
    key = key or os.urandom(32)
    aead = AESGCM(key)
    rng = random.Random(tag)
    plaintexts: dict[UUID, bytes] = {}
    with psycopg.connect(url) as conn:
        for c in range(companies):
            company, team = uuid4(), uuid4()
            boss, worker = uuid4(), uuid4()
            conn.execute(
                "INSERT INTO companies (id, slug, name, description, budget_usd) VALUES (%s, %s, %s, %s, %s)",
                (company, f"co-{tag}-{c}", f"Company {c}", AWKWARD, Decimal("1234.5678")),
            )
            conn.execute("INSERT INTO teams (id, company_id, name) VALUES (%s, %s, 'eng')", (team, company))
            for agent, reports_to in ((boss, None), (worker, boss)):
                conn.execute(
                    "INSERT INTO agents (id, company_id, team_id, name, role, adapter, adapter_config,"
                    " reports_to) VALUES (%s, %s, %s, %s, 'dev', 'claude', %s, %s)",
                    (agent, company, team, f"agent-{agent.hex[:6]}", Jsonb(AWKWARD_JSON), reports_to),
                )
            conn.execute("UPDATE teams SET manager_agent_id = %s WHERE id = %s", (boss, team))
            parent, child = uuid4(), uuid4()
            for task, status, parent_id in ((parent, "blocked", None), (child, "running", parent)):
                conn.execute(
                    "INSERT INTO tasks (id, company_id, title, body, status, parent_id, assigned_agent_id,"
                    " attempt, fencing_token, output) VALUES (%s, %s, %s, %s, %s, %s, %s, 2, %s, %s)",
                    (task, company, f"task {status}", AWKWARD, status, parent_id, worker,
                     rng.randrange(1, 2**62), Jsonb(AWKWARD_JSON)),
                )  # fmt: skip
            old_run, run = uuid4(), uuid4()
            conn.execute(
                "INSERT INTO runs (id, task_id, company_id, agent_id, attempt, fencing_token, status,"
                " exit_reason, error, ended_at) VALUES (%s, %s, %s, %s, 1, 1, 'failed', 'crash', %s, now())",
                (old_run, child, company, worker, AWKWARD),
            )
            conn.execute(
                "INSERT INTO runs (id, task_id, company_id, agent_id, attempt, fencing_token)"
                " VALUES (%s, %s, %s, %s, 2, 2)",
                (run, child, company, worker),
            )
            conn.execute(
                "INSERT INTO run_checkpoints (run_id, fencing_token, payload) VALUES (%s, 2, %s)",
                (run, Jsonb({"step": 1})),
            )
            conn.execute("UPDATE runs SET cli_session = %s WHERE id = %s", (f"session-{old_run}", old_run))
            conn.execute(
                "INSERT INTO task_comments (company_id, task_id, author, body) VALUES (%s, %s, %s, %s)",
                (company, child, "user:local", AWKWARD),
            )
            conn.execute(
                "INSERT INTO leases (task_id, run_id, agent_id, company_id, fencing_token, token_hash,"
                " expires_at) VALUES (%s, %s, %s, %s, 2, %s, now() + interval '5 minutes')",
                (child, run, worker, company, uuid4().hex),
            )
            entry = uuid4()
            conn.execute(
                "INSERT INTO cost_entries (id, company_id, agent_id, task_id, run_id, kind, model,"
                " input_tokens, output_tokens, effective_usd) VALUES (%s, %s, %s, %s, %s, 'llm', 'm', 10, 20,"
                " 0.12345678)",
                (entry, company, worker, child, run),
            )
            conn.execute(
                "INSERT INTO cost_entries (company_id, kind, adjusts_entry_id, effective_usd)"
                " VALUES (%s, 'adjustment', %s, -0.1)",
                (company, entry),
            )
            conn.execute(
                "INSERT INTO approvals (company_id, task_id, run_id, agent_id, action, cost_usd,"
                " side_effects, requested_by, expires_at)"
                " VALUES (%s, %s, %s, %s, 'send the newsletter', 12.5, %s,"
                " 'agent:x', '2026-02-01T00:00:00Z')",
                (company, child, run, worker, Jsonb([AWKWARD])),
            )
            conn.execute(
                "INSERT INTO approval_rules (company_id, effect, action_pattern, max_usd, reason, created_by)"
                " VALUES (%s, 'auto_approve', 'book *', 25, %s, 'user:local')",
                (company, AWKWARD),
            )
            conn.execute(
                "INSERT INTO cost_counters (scope, scope_id, day, company_id, usd, entries)"
                " VALUES ('company', %s, '2026-01-31', %s, 0.02345678, 2)",
                (company, company),
            )
            conn.execute(
                "INSERT INTO price_overrides (company_id, model, input_mtok, output_mtok, note, set_by)"
                " VALUES (%s, %s, 1.25, 10, %s, 'user:x')",
                (company, f"model-{c}", AWKWARD),
            )
            conn.execute(
                "INSERT INTO budget_grants (company_id, scope, scope_id, kind, usd, day, reason, created_by)"
                " VALUES (%s, 'team', %s, 'topup', 12.3456, '2026-01-31', %s, 'user:local')",
                (company, team, AWKWARD),
            )
            conn.execute(
                "INSERT INTO budget_breaches (company_id, scope, scope_id, period_start, level, cap_usd,"
                " spent_usd, task_id, run_id) VALUES (%s, 'team', %s, '2026-01-01', 'soft', 10, 8.12345678,"
                " %s, %s)",
                (company, team, child, run),
            )
            conn.execute(
                "INSERT INTO workflow_budgets (workflow_id, company_id, budget_usd) VALUES (%s, %s, 7.5)",
                (uuid4(), company),
            )
            conn.execute(
                "INSERT INTO memory_entries (company_id, scope, scope_id, topic, body, actor)"
                " VALUES (%s, 'company', %s, 'notes', %s, 'agent:x')",
                (company, company, AWKWARD),
            )
            secret = uuid4()
            plaintext = os.urandom(rng.randrange(1, 64))
            nonce = os.urandom(12)
            conn.execute(
                "INSERT INTO secrets (id, company_id, name, value, nonce, key_id)"
                " VALUES (%s, %s, %s, %s, %s, %s)",
                (secret, company, f"TOKEN_{c}", aead.encrypt(nonce, plaintext, secret.bytes), nonce, key_id),
            )
            plaintexts[secret] = plaintext
            conn.execute(
                "INSERT INTO integrations (company_id, kind, name, secret_id)"
                " VALUES (%s, 'github', 'gh', %s)",
                (company, secret),
            )
            conn.execute(
                "INSERT INTO api_tokens (company_id, name, env, token_hash, hint, scopes, created_by)"
                " VALUES (%s, %s, 'dev', %s, 'ca_dev_0123', %s, 'user:local')",
                (company, AWKWARD[:200] or "t", uuid4().hex + tag, ["read", f"company:{company}"]),
            )
            # Before the events: the audit trigger writes their outbox rows (webhook_deliveries).
            conn.execute(
                "INSERT INTO webhook_endpoints (company_id, url, events, secret_name, description)"
                " VALUES (%s, 'https://example.com/hook?q=1', %s, 'webhook.x', %s)",
                (company, ["*", "task.*"], AWKWARD),
            )
            for n in range(3):
                conn.execute(
                    "INSERT INTO audit_events (company_id, actor, action, subject_type, subject_id, payload)"
                    " VALUES (%s, 'user:local', 'company.created', 'company', %s, %s)",
                    (company, str(company), Jsonb({**AWKWARD_JSON, "n": n})),
                )
        conn.execute(
            "INSERT INTO audit_seals (first_event_id, last_event_id, event_count, events_hash, seal_hash,"
            " key_id, signature) SELECT min(id), max(id), count(*), 'h', 's', 'k', 'sig' FROM audit_events"
        )
        conn.execute(
            "INSERT INTO database_key (id, key_id, recorded_by) VALUES (1, %s, 'populate')"
            " ON CONFLICT (id) DO UPDATE SET key_id = excluded.key_id",
            (key_id,),
        )
        # Host tables (db/schema/hosts.py): not carried by export, import or restore.
        conn.execute(
            "INSERT INTO orchestrators (host, pid, holder, version, schema_revision, isolation, key_id,"
            " heartbeat_seconds) VALUES ('populate-host', 1, 'populate-host:1', '0', 'x', 'none', %s, 10)",
            (key_id,),
        )
        conn.execute(
            "INSERT INTO backups (created_at, host, path, name, size_bytes, includes_secrets,"
            " schema_revision) VALUES ('2000-01-03T00:00:00Z', 'populate-host', %s, 'x.tar.gz', 1, false,"
            " 'x')"
            " ON CONFLICT DO NOTHING",
            (f"/nowhere/{tag}.tar.gz",),
        )
    return Populated(key=key, plaintexts=plaintexts)


def decrypt_all(url: str, populated: Populated) -> dict[UUID, bytes]:
    aead = AESGCM(populated.key)
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT id, value, nonce FROM secrets").fetchall()
    return {r[0]: aead.decrypt(r[2], r[1], r[0].bytes) for r in rows}


def export_to(url: str, path: Path, home: Path) -> Manifest:
    db = open_database(Settings(home=home, database_url=url))
    try:
        return export_database(db, path)
    finally:
        db.close()


def checksums(manifest: Manifest) -> dict[str, tuple[int, str]]:
    return {t.name: (t.rows, t.sha256) for t in manifest.tables}


def query(url: str, statement: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(statement).fetchall()
