"""Logs rotate daily into compressed files, are pruned by age, and `logs` prints and follows them."""

from __future__ import annotations

import gzip
import io
import logging
import os
import threading
import time
from pathlib import Path

import pytest

from company_agents.cli.logs import follow, tail_lines
from company_agents.logging_setup import DailyCompressedFileHandler, configure_logging, prune_logs
from company_agents.settings import Settings


def test_rollover_compresses_and_prunes_by_age(tmp_path: Path) -> None:
    path = tmp_path / "orchestrator.log"
    old = tmp_path / "orchestrator.log.2020-01-01.gz"
    old.write_bytes(gzip.compress(b"ancient\n"))
    month_ago = time.time() - 31 * 86400
    os.utime(old, (month_ago, month_ago))
    recent = tmp_path / "orchestrator.log.2020-01-02.gz"
    recent.write_bytes(gzip.compress(b"recent\n"))
    handler = DailyCompressedFileHandler(path, retention_days=30)
    try:
        handler.emit(logging.makeLogRecord({"msg": "before midnight", "levelno": logging.INFO}))
        handler.doRollover()
        handler.emit(logging.makeLogRecord({"msg": "after midnight", "levelno": logging.INFO}))
    finally:
        handler.close()
    rotated = sorted(p.name for p in tmp_path.glob("orchestrator.log.*.gz"))
    assert old.name not in rotated and recent.name in rotated and len(rotated) == 2
    today = next(p for p in tmp_path.glob("orchestrator.log.*.gz") if p != recent)
    assert gzip.decompress(today.read_bytes()) == b"before midnight\n"
    assert path.read_text() == "after midnight\n"
    assert not list(tmp_path.glob("orchestrator.log.*[0-9]"))  # nothing left uncompressed


def test_retention_is_a_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMPANY_AGENTS_LOG_RETENTION_DAYS", "3")
    settings = Settings(home=tmp_path)
    assert settings.log_retention_days == 3
    settings.logs_dir.mkdir(parents=True)
    stale = settings.logs_dir / "orchestrator.log.2020-01-01.gz"
    stale.write_bytes(b"")
    four_days = time.time() - 4 * 86400
    os.utime(stale, (four_days, four_days))
    root = logging.getLogger()
    before = list(root.handlers)
    try:
        configure_logging(settings, "orchestrator", to_stderr=False)  # pruning on start, too
        assert not stale.exists()
    finally:
        for handler in list(root.handlers):
            if handler not in before:
                root.removeHandler(handler)
                handler.close()
    assert prune_logs(settings.logs_dir / "orchestrator.log", 3) == []


def test_tail_and_follow_across_a_rotation(tmp_path: Path) -> None:
    path = tmp_path / "orchestrator.log"
    path.write_bytes(b"".join(b"line %d\n" % i for i in range(5)))
    data, position = tail_lines(path, 2)
    assert data == b"line 3\nline 4\n" and position == path.stat().st_size
    assert tail_lines(path, 0)[0].count(b"\n") == 5

    out = io.BytesIO()
    done = threading.Event()
    thread = threading.Thread(
        target=follow, args=(path, position, out), kwargs={"poll_seconds": 0.01, "stop": done.is_set}
    )
    thread.start()
    try:
        with path.open("ab") as fh:
            fh.write(b"line 5\n")
        wait_for(out, b"line 5\n")
        path.rename(tmp_path / "orchestrator.log.2026-01-01")  # midnight
        path.write_bytes(b"new day\n")
        wait_for(out, b"new day\n")
    finally:
        done.set()
        thread.join(timeout=10)
    assert out.getvalue() == b"line 5\nnew day\n"


def wait_for(out: io.BytesIO, wanted: bytes) -> None:
    deadline = time.monotonic() + 10
    while wanted not in out.getvalue() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert wanted in out.getvalue()
