"""The export archive: a tar holding ``manifest.json`` and one gzip-compressed COPY text file per table.

Layout (format version 1)::

    manifest.json                   first member, so a reader finds it without scanning the tar
    data/0001-companies.copy.gz     COPY … TO STDOUT text, rows in primary-key order, gzip
    data/0002-…

The checksum of a table is the sha256 of its uncompressed COPY text. Text COPY is the same on every
PostgreSQL version once the session fixes the output settings (``tables.SESSION_SETTINGS``), so the
same rows hash the same on PostgreSQL 15 and 18, and an import can prove it loaded exactly the rows
it was given by copying them out again.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from company_agents.errors import ArchiveError
from company_agents.transfer.progress import ProgressFn

FORMAT = "company-agents-db-export"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
CHUNK = 1 << 20
MAX_MANIFEST_BYTES = 16 << 20
# 31 = gzip container (header + CRC32 + length), so a data file is also a plain .gz for humans.
GZIP_WBITS = 31
# Level 1: COPY text still shrinks about 4-5x, at a fraction of level 6's CPU (the export competes
# with the server for cores).
COMPRESS_LEVEL = 1


@dataclass(frozen=True)
class TableEntry:
    """One table in the archive: its columns, row order, row count and content checksum."""

    name: str
    columns: tuple[str, ...]
    order_by: tuple[str, ...]
    rows: int
    sha256: str
    file: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "columns": list(self.columns),
            "order_by": list(self.order_by),
            "rows": self.rows,
            "sha256": self.sha256,
            "file": self.file,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> TableEntry:
        return cls(
            name=str(raw["name"]),
            columns=tuple(str(c) for c in raw["columns"]),
            order_by=tuple(str(c) for c in raw["order_by"]),
            rows=int(raw["rows"]),
            sha256=str(raw["sha256"]),
            file=str(raw["file"]),
        )


@dataclass(frozen=True)
class SequenceEntry:
    """The state of a column's sequence (identity columns) at export time."""

    table: str
    column: str
    last_value: int
    is_called: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "column": self.column,
            "last_value": self.last_value,
            "is_called": self.is_called,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> SequenceEntry:
        return cls(
            table=str(raw["table"]),
            column=str(raw["column"]),
            last_value=int(raw["last_value"]),
            is_called=bool(raw["is_called"]),
        )


@dataclass(frozen=True)
class Manifest:
    """What an archive holds and how to check it."""

    schema_revision: str
    server_version: str
    server_version_num: int
    created_at: str
    tables: tuple[TableEntry, ...]
    sequences: tuple[SequenceEntry, ...] = ()
    format: str = FORMAT
    format_version: int = FORMAT_VERSION

    @property
    def total_rows(self) -> int:
        return sum(t.rows for t in self.tables)

    def table(self, name: str) -> TableEntry | None:
        return next((t for t in self.tables if t.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "format_version": self.format_version,
            "schema_revision": self.schema_revision,
            "server_version": self.server_version,
            "server_version_num": self.server_version_num,
            "created_at": self.created_at,
            "tables": [t.to_dict() for t in self.tables],
            "sequences": [s.to_dict() for s in self.sequences],
        }

    @classmethod
    def from_dict(cls, raw: object) -> Manifest:
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            raise ArchiveError("not a Company Agents database export (manifest.json has another format)")
        version = raw.get("format_version")
        if not isinstance(version, int) or version < 1:
            raise ArchiveError("the export manifest has no valid format version")
        if version > FORMAT_VERSION:
            raise ArchiveError(
                f"the export has format version {version}; this version of company-agents reads "
                f"up to {FORMAT_VERSION}: upgrade company-agents"
            )
        try:
            return cls(
                schema_revision=str(raw["schema_revision"]),
                server_version=str(raw["server_version"]),
                server_version_num=int(raw["server_version_num"]),
                created_at=str(raw["created_at"]),
                tables=tuple(TableEntry.from_dict(t) for t in raw["tables"]),
                sequences=tuple(SequenceEntry.from_dict(s) for s in raw.get("sequences", [])),
                format_version=version,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ArchiveError(f"the export manifest is incomplete or malformed ({exc!r})") from None


class StreamDigest:
    """Row count and sha256 of a COPY text stream (one row per line: COPY escapes embedded newlines)."""

    def __init__(self) -> None:
        self._sha = hashlib.sha256()
        self.rows = 0
        self.bytes = 0

    def update(self, data: bytes | bytearray) -> None:
        self._sha.update(data)
        self.rows += data.count(b"\n")
        self.bytes += len(data)

    @property
    def sha256(self) -> str:
        return self._sha.hexdigest()

    def matches(self, entry: TableEntry) -> bool:
        return self.rows == entry.rows and self.sha256 == entry.sha256


@dataclass
class TableSink:
    """Receives one table's COPY stream: hashes it, counts rows, compresses it to a spool file."""

    path: Path
    digest: StreamDigest = field(default_factory=StreamDigest)
    _buffer: bytearray = field(default_factory=bytearray)
    _compressor: Any = field(
        default_factory=lambda: zlib.compressobj(COMPRESS_LEVEL, zlib.DEFLATED, GZIP_WBITS)
    )

    def __post_init__(self) -> None:
        self._file = self.path.open("wb")

    def write(self, data: bytes | bytearray | memoryview) -> None:
        # COPY hands over one row per message: batch them so hashing and compression run on big blocks.
        self._buffer += data
        if len(self._buffer) >= CHUNK:
            self._flush()

    def _flush(self) -> None:
        if self._buffer:
            self.digest.update(self._buffer)
            self._file.write(self._compressor.compress(self._buffer))
            self._buffer.clear()

    def close(self) -> None:
        self._flush()
        self._file.write(self._compressor.flush())
        self._file.close()


class ArchiveWriter:
    """Spools each table to a compressed temp file, then writes the tar (manifest first) atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._spool = Path(tempfile.mkdtemp(prefix=".export-", dir=path.parent))
        self._entries: list[TableEntry] = []

    def add_table(self, name: str) -> TableSink:
        """A sink for the next table; call ``finish_table`` once its stream ended."""
        index = len(self._entries) + 1
        return TableSink(self._spool / f"{index:04d}-{name}.copy.gz")

    def finish_table(
        self, sink: TableSink, name: str, columns: tuple[str, ...], order_by: tuple[str, ...]
    ) -> TableEntry:
        sink.close()
        entry = TableEntry(
            name=name,
            columns=columns,
            order_by=order_by,
            rows=sink.digest.rows,
            sha256=sink.digest.sha256,
            file=f"data/{sink.path.name}",
        )
        self._entries.append(entry)
        return entry

    def commit(
        self,
        *,
        schema_revision: str,
        server_version: str,
        server_version_num: int,
        created_at: str,
        sequences: tuple[SequenceEntry, ...],
    ) -> Manifest:
        """Write the tar next to the destination, fsync it, and rename it into place."""
        manifest = Manifest(
            schema_revision=schema_revision,
            server_version=server_version,
            server_version_num=server_version_num,
            created_at=created_at,
            tables=tuple(self._entries),
            sequences=sequences,
        )
        manifest_path = self._spool / MANIFEST
        manifest_path.write_text(json.dumps(manifest.to_dict(), indent=2) + "\n")
        partial = self._spool / "archive.tar"
        with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as tar:
            tar.add(manifest_path, arcname=MANIFEST)
            for entry in manifest.tables:
                tar.add(self._spool / Path(entry.file).name, arcname=entry.file)
        with partial.open("rb") as fh:
            os.fsync(fh.fileno())
        partial.chmod(0o600)  # the export holds every row, encrypted secrets included
        os.replace(partial, self.path)
        self.abort()
        return manifest

    def abort(self) -> None:
        shutil.rmtree(self._spool, ignore_errors=True)


class ArchiveReader:
    """Reads and checks an archive; nothing here writes anywhere."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if not path.is_file():
            raise ArchiveError(f"{path} does not exist or is not a file")
        try:
            self._tar = tarfile.open(path, "r:")
        except (tarfile.TarError, OSError) as exc:
            raise ArchiveError(f"{path.name} is not a Company Agents database export ({exc})") from None
        try:
            self.manifest = self._read_manifest()
            self._members = self._check_members()
        except BaseException:
            self._tar.close()
            raise

    def __enter__(self) -> ArchiveReader:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._tar.close()

    def _corrupt(self, detail: object) -> ArchiveError:
        return ArchiveError(f"{self.path.name} is corrupt or truncated ({detail})")

    def _read_manifest(self) -> Manifest:
        try:
            first = self._tar.next()
        except (tarfile.TarError, OSError) as exc:
            raise self._corrupt(exc) from None
        if first is None or first.name != MANIFEST or not first.isfile():
            raise ArchiveError(f"{self.path.name} is not a Company Agents database export (no {MANIFEST})")
        if first.size > MAX_MANIFEST_BYTES:
            raise ArchiveError(f"{self.path.name}: {MANIFEST} is implausibly large")
        try:
            fh = self._tar.extractfile(first)
            raw = fh.read() if fh is not None else b""
            return Manifest.from_dict(json.loads(raw))
        except (tarfile.TarError, OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise self._corrupt(f"{MANIFEST}: {exc}") from None

    def _check_members(self) -> dict[str, tarfile.TarInfo]:
        try:
            members = {m.name: m for m in self._tar.getmembers()}
        except (tarfile.TarError, OSError) as exc:
            raise self._corrupt(exc) from None
        expected = {MANIFEST, *(t.file for t in self.manifest.tables)}
        missing = sorted(expected - members.keys())
        if missing:
            raise self._corrupt(f"missing {', '.join(missing)}")
        extra = sorted(members.keys() - expected)
        if extra:
            raise ArchiveError(f"{self.path.name} holds files its manifest does not list: {', '.join(extra)}")
        names = [t.name for t in self.manifest.tables]
        if len(set(names)) != len(names):
            raise ArchiveError(f"{self.path.name}: the manifest lists a table twice")
        return members

    def chunks(self, entry: TableEntry) -> Iterator[bytes]:
        """The table's uncompressed COPY text, in blocks; raises ``ArchiveError`` on damage."""
        try:
            fh = self._tar.extractfile(self._members[entry.file])
            if fh is None:
                raise self._corrupt(f"{entry.file} is not a file")
            inflater = zlib.decompressobj(GZIP_WBITS)
            while raw := fh.read(CHUNK):
                if inflater.eof:
                    raise self._corrupt(f"{entry.file}: data after the end of the compressed stream")
                out = inflater.decompress(raw)
                if out:
                    yield out
            tail = inflater.flush()
            if tail:
                yield tail
            if not inflater.eof or inflater.unused_data:
                raise self._corrupt(f"{entry.file}: the compressed stream is cut short or has trailing data")
        except (tarfile.TarError, zlib.error, OSError, EOFError) as exc:
            raise self._corrupt(f"{entry.file}: {exc}") from None

    def verify(self, progress: ProgressFn | None = None) -> None:
        """Read every table and compare its row count and checksum with the manifest."""
        for entry in self.manifest.tables:
            digest = StreamDigest()
            for block in self.chunks(entry):
                digest.update(block)
                if progress is not None:
                    progress("check", entry.name, digest.rows, entry.rows)
            if not digest.matches(entry):
                raise self._corrupt(
                    f"table {entry.name}: {digest.rows} rows, sha256 {digest.sha256[:12]}…; "
                    f"the manifest says {entry.rows} rows, sha256 {entry.sha256[:12]}…"
                )
            if progress is not None:
                progress("check", entry.name, digest.rows, entry.rows)
