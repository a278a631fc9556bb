"""`db export` / `db import` on real PostgreSQL: round trips across servers, snapshots, damaged archives."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import threading
from collections.abc import Callable
from pathlib import Path
from uuid import uuid4

import psycopg
import pytest

from company_agents.db.database import ORCHESTRATOR_APP_NAME, open_database
from company_agents.db.migrate import head_revision
from company_agents.errors import ArchiveError, ImportVerificationFailed, OrchestratorRunning, TargetNotEmpty
from company_agents.settings import Settings
from company_agents.transfer import ArchiveReader, ImportResult, import_archive
from company_agents.transfer.archive import MANIFEST
from tests.conftest import PgServer
from tests.integration.populate import checksums, decrypt_all, export_to, populate, query

pytestmark = pytest.mark.timeout(300)

TASK_STATE = "SELECT id, status, attempt, fencing_token, parent_id FROM tasks ORDER BY id"
COMPANIES = "SELECT id, slug, name, description, budget_usd, status FROM companies ORDER BY slug"


def import_to(url: str, archive: Path, home: Path, *, replace: bool = False) -> ImportResult:
    db = open_database(Settings(home=home, database_url=url))
    try:
        return import_archive(db, archive, replace=replace)
    finally:
        db.close()


def test_round_trip_embedded_to_external_and_back(
    embedded_pg: PgServer, external_pg: PgServer, tmp_path: Path
) -> None:
    source = embedded_pg.create_database()
    data = populate(source, companies=3)
    first = export_to(source, tmp_path / "one.tar", tmp_path)
    assert first.server_version_num >= 180000

    external = external_pg.create_empty_database()  # no schema at all: import migrates it
    result = import_to(external, tmp_path / "one.tar", tmp_path)
    assert result.revision == head_revision() and result.total_rows == first.total_rows
    second = export_to(external, tmp_path / "two.tar", tmp_path)

    back = embedded_pg.create_database()  # migrated and empty
    import_to(back, tmp_path / "two.tar", tmp_path)
    third = export_to(back, tmp_path / "three.tar", tmp_path)

    assert checksums(first) == checksums(second) == checksums(third)
    assert all(rows > 0 for rows, _ in checksums(first).values()), "every table must be exercised"
    for url in (external, back):
        assert query(url, COMPANIES) == query(source, COMPANIES)
        assert query(url, TASK_STATE) == query(source, TASK_STATE)
        assert query(url, "SELECT id, value, nonce, key_id FROM secrets ORDER BY id") == query(
            source, "SELECT id, value, nonce, key_id FROM secrets ORDER BY id"
        )
        assert decrypt_all(url, data) == data.plaintexts
        # Identity sequences continue after the loaded ids: a new row never collides.
        new_id = query(
            url,
            "INSERT INTO audit_events (actor, action, subject_type, subject_id)"
            " VALUES ('system:x', 'test.inserted', 't', '1') RETURNING id",
        )[0][0]
        assert new_id > query(source, "SELECT max(id) FROM audit_events")[0][0]


def test_export_is_one_snapshot_while_writes_go_on(pg: PgServer, tmp_path: Path) -> None:
    url = pg.create_database()
    populate(url, companies=1)
    stop = threading.Event()
    written = [0]

    def writer() -> None:
        # Each transaction adds a company with a task and a run; a torn export would show a run
        # whose task is missing, or unequal counts.
        with psycopg.connect(url) as conn:
            while not stop.is_set():
                with conn.transaction():
                    company, agent, task = uuid4(), uuid4(), uuid4()
                    conn.execute(
                        "INSERT INTO companies (id, slug, name) VALUES (%s, %s, 'w')",
                        (company, f"w-{company.hex[:12]}"),
                    )
                    conn.execute(
                        "INSERT INTO agents (id, company_id, name, role, adapter)"
                        " VALUES (%s, %s, 'a', 'r', 'x')",
                        (agent, company),
                    )
                    conn.execute(
                        "INSERT INTO tasks (id, company_id, title, status, attempt, fencing_token)"
                        " VALUES (%s, %s, 't', 'running', 1, 1)",
                        (task, company),
                    )
                    conn.execute(
                        "INSERT INTO runs (task_id, company_id, agent_id, attempt, fencing_token)"
                        " VALUES (%s, %s, %s, 1, 1)",
                        (task, company, agent),
                    )
                    conn.execute(
                        "INSERT INTO audit_events (company_id, actor, action, subject_type, subject_id)"
                        " VALUES (%s, 'system:w', 'task.claimed', 'task', %s)",
                        (company, str(task)),
                    )
                written[0] += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        manifests = [export_to(url, tmp_path / f"snap{i}.tar", tmp_path) for i in range(3)]
    finally:
        stop.set()
        thread.join()
    assert written[0] > 0
    for i, manifest in enumerate(manifests):
        rows = {t.name: t.rows for t in manifest.tables}
        # populate() made 2 tasks, 2 runs and 3 audit events for its one company.
        assert rows["tasks"] - 2 == rows["runs"] - 2 == rows["audit_events"] - 3 == rows["companies"] - 1
        with ArchiveReader(tmp_path / f"snap{i}.tar") as archive:
            tables = {t.name: t for t in archive.manifest.tables}
            task_ids = {line.split(b"\t")[0] for line in _lines(archive, tables["tasks"])}
            col = tables["runs"].columns.index("task_id")
            run_tasks = {line.split(b"\t")[col] for line in _lines(archive, tables["runs"])}
            assert run_tasks <= task_ids


def _lines(archive: ArchiveReader, entry: object) -> list[bytes]:
    from company_agents.transfer.archive import TableEntry

    assert isinstance(entry, TableEntry)
    return b"".join(archive.chunks(entry)).splitlines()


@pytest.fixture
def exported(pg: PgServer, tmp_path: Path) -> tuple[str, Path]:
    url = pg.create_database()
    populate(url, companies=2, tag="src")
    path = tmp_path / "export.tar"
    export_to(url, path, tmp_path)
    return url, path


def _rewrite(path: Path, edit: Callable[[dict[str, bytes]], None]) -> None:
    """Rebuild the tar with edited member contents (the manifest stays first)."""
    with tarfile.open(path) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]
    edit(members)
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def _flip_data_byte(path: Path) -> None:
    with tarfile.open(path) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("companies.copy.gz"))
    raw = bytearray(path.read_bytes())
    raw[member.offset_data + member.size // 2] ^= 0x10
    path.write_bytes(bytes(raw))


def _flip_manifest_checksum(path: Path) -> None:
    def edit(members: dict[str, bytes]) -> None:
        manifest = json.loads(members[MANIFEST])
        sha = manifest["tables"][2]["sha256"]
        manifest["tables"][2]["sha256"] = ("0" if sha[0] != "0" else "1") + sha[1:]
        members[MANIFEST] = json.dumps(manifest).encode()

    _rewrite(path, edit)


def _newer_format(path: Path) -> None:
    def edit(members: dict[str, bytes]) -> None:
        manifest = json.loads(members[MANIFEST])
        manifest["format_version"] = 99
        members[MANIFEST] = json.dumps(manifest).encode()

    _rewrite(path, edit)


def _drop_a_table(path: Path) -> None:
    def edit(members: dict[str, bytes]) -> None:
        del members[next(n for n in members if n.endswith("tasks.copy.gz"))]

    _rewrite(path, edit)


def _cut(path: Path, where: Callable[[tarfile.TarInfo], int]) -> None:
    """Truncate the file inside the last member's data."""
    with tarfile.open(path) as tar:
        last = tar.getmembers()[-1]
    path.write_bytes(path.read_bytes()[: where(last)])


def _write(data: bytes) -> Callable[[Path], None]:
    def spoil(path: Path) -> None:
        path.write_bytes(data)

    return spoil


DAMAGE: dict[str, tuple[Callable[[Path], None], str]] = {
    "bit flip in data": (_flip_data_byte, "corrupt"),
    "bit flip in manifest checksum": (_flip_manifest_checksum, "corrupt"),
    "truncated at the last header": (lambda p: _cut(p, lambda m: m.offset), "corrupt or truncated"),
    "cut inside the last table": (
        lambda p: _cut(p, lambda m: m.offset_data + m.size // 2),
        "corrupt or truncated",
    ),
    "not a tar": (_write(gzip.compress(b"hello")), "not a Company Agents database export"),
    "empty file": (_write(b""), "not a Company Agents database export"),
    "newer format": (_newer_format, "upgrade company-agents"),
    "missing table file": (_drop_a_table, "missing data/"),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_archive_is_refused_and_target_untouched(
    damage: str, exported: tuple[str, Path], pg: PgServer, tmp_path: Path
) -> None:
    _, path = exported
    spoil, message = DAMAGE[damage]
    spoil(path)
    target = pg.create_database()
    populate(target, companies=1, tag="target")
    before = checksums(export_to(target, tmp_path / "before.tar", tmp_path))
    with pytest.raises(ArchiveError, match=message):
        import_to(target, path, tmp_path, replace=True)
    assert checksums(export_to(target, tmp_path / "after.tar", tmp_path)) == before
    empty = pg.create_empty_database()
    with pytest.raises(ArchiveError):
        import_to(empty, path, tmp_path)
    assert query(empty, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == [(0,)]


def test_readback_mismatch_rolls_everything_back(
    exported: tuple[str, Path], pg: PgServer, tmp_path: Path
) -> None:
    """A self-consistent archive whose rows do not read back as written (non-canonical JSON) is refused
    by the final verification, and the replaced target keeps its old data."""
    _, path = exported

    def edit(members: dict[str, bytes]) -> None:
        import hashlib

        manifest = json.loads(members[MANIFEST])
        entry = next(t for t in manifest["tables"] if t["name"] == "agents")
        agents_name = entry["file"]
        agents = gzip.decompress(members[agents_name]).replace(b'{"emoji": ', b'{"emoji":', 1)
        members[agents_name] = gzip.compress(agents)
        entry["sha256"] = hashlib.sha256(agents).hexdigest()
        members[MANIFEST] = json.dumps(manifest).encode()

    _rewrite(path, edit)
    with ArchiveReader(path) as archive:
        archive.verify()  # the archive itself is consistent
    target = pg.create_database()
    populate(target, companies=1, tag="target")
    before = checksums(export_to(target, tmp_path / "before.tar", tmp_path))
    with pytest.raises(ImportVerificationFailed, match="agents"):
        import_to(target, path, tmp_path, replace=True)
    assert checksums(export_to(target, tmp_path / "after.tar", tmp_path)) == before


def test_target_with_data_needs_replace_which_swaps_history_tables_too(
    exported: tuple[str, Path], pg: PgServer, tmp_path: Path
) -> None:
    source, path = exported
    target = pg.create_database()
    populate(target, companies=1, tag="target")
    with pytest.raises(TargetNotEmpty, match="--replace"):
        import_to(target, path, tmp_path)
    import_to(target, path, tmp_path, replace=True)
    assert query(target, COMPANIES) == query(source, COMPANIES)
    assert query(target, "SELECT count(*) FROM audit_events") == query(
        source, "SELECT count(*) FROM audit_events"
    )
    # Append-only triggers are back after the schema was rebuilt.
    with pytest.raises(psycopg.DatabaseError, match="append-only"):
        query(target, "DELETE FROM audit_events")


def test_import_refused_while_an_orchestrator_uses_the_target(
    exported: tuple[str, Path], pg: PgServer, tmp_path: Path
) -> None:
    _, path = exported
    target = pg.create_database()
    with psycopg.connect(target, application_name=ORCHESTRATOR_APP_NAME):
        with pytest.raises(OrchestratorRunning, match="stop it first"):
            import_to(target, path, tmp_path)
    import_to(target, path, tmp_path)


def test_export_refuses_a_database_behind_this_version(pg: PgServer, tmp_path: Path) -> None:
    from company_agents.errors import SchemaOutOfDate

    url = pg.create_empty_database()
    with pytest.raises(SchemaOutOfDate, match="db migrate"):
        export_to(url, tmp_path / "x.tar", tmp_path)
    assert not (tmp_path / "x.tar").exists()
    assert not list(tmp_path.glob(".export-*")), "the spool directory is removed"


def test_rebuilt_keys_indexes_and_foreign_keys_match_the_migrations(
    exported: tuple[str, Path], pg: PgServer, tmp_path: Path
) -> None:
    """Import sets constraints aside for speed; what comes back is exactly what the migrations made."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    from company_agents.db.database import sqlalchemy_url
    from company_agents.db.schema import metadata

    source, path = exported
    target = pg.create_empty_database()
    import_to(target, path, tmp_path)
    engine = create_engine(sqlalchemy_url(target), poolclass=NullPool)
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
        assert compare_metadata(ctx, metadata) == []
    engine.dispose()
    catalog = (
        "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint"
        " WHERE connamespace = 'public'::regnamespace ORDER BY 1, 2"
    )
    indexes = "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1"
    assert query(target, catalog) == query(source, catalog)
    assert query(target, indexes) == query(source, indexes)


def test_revisions_this_version_does_not_know_are_refused(
    exported: tuple[str, Path], pg: PgServer, tmp_path: Path
) -> None:
    from company_agents.errors import SchemaOutOfDate

    _, path = exported
    newer = tmp_path / "newer.tar"
    newer.write_bytes(path.read_bytes())

    def edit(members: dict[str, bytes]) -> None:
        manifest = json.loads(members[MANIFEST])
        manifest["schema_revision"] = "9999"
        members[MANIFEST] = json.dumps(manifest).encode()

    _rewrite(newer, edit)
    target = pg.create_empty_database()
    with pytest.raises(ArchiveError, match="revision 9999"):
        import_to(target, newer, tmp_path)
    ahead = pg.create_database()
    query(ahead, "UPDATE alembic_version SET version_num = '9999' RETURNING 1")
    with pytest.raises(SchemaOutOfDate, match="newer company-agents"):
        import_to(ahead, path, tmp_path)
