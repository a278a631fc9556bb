"""Backup retention: the pure selection on a synthetic calendar, and prune on real files."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from company_agents.backup.bundle import backup_time
from company_agents.backup.retention import prune_backups, select_retained
from company_agents.settings import Settings

START = datetime(2026, 1, 1, tzinfo=UTC)  # a Thursday


def name(when: datetime) -> str:
    return when.strftime("%Y%m%dT%H%M%SZ") + ".tar.gz"


def calendar(days: int, per_day: tuple[int, ...] = (3, 15)) -> list[tuple[str, datetime]]:
    """Backups at the given hours of each of ``days`` consecutive days."""
    out = []
    for d in range(days):
        for hour in per_day:
            when = START + timedelta(days=d, hours=hour)
            out.append((name(when), when))
    return out


def test_daily_and_weekly_on_sixty_days_of_twice_daily_backups() -> None:
    backups = calendar(60)
    keep = select_retained(backups, keep_daily=7, keep_weekly=4)
    last = START + timedelta(days=59)  # 2026-03-01, a Sunday
    daily = {name(last - timedelta(days=d) + timedelta(hours=15)) for d in range(7)}
    # The newest backup of each of the last four ISO weeks: the Sundays 03-01, 02-22, 02-15, 02-08.
    weekly = {name(last - timedelta(weeks=w) + timedelta(hours=15)) for w in range(4)}
    assert keep == daily | weekly
    assert len(keep) == 7 + 3  # this week's Sunday is both daily and weekly


def test_gaps_do_not_eat_retention() -> None:
    """A machine off for weeks still keeps its last seven backup days."""
    backups = calendar(10) + [
        (name(w), w) for w in (START + timedelta(days=40, hours=1), START + timedelta(days=41, hours=1))
    ]
    keep = select_retained(backups, keep_daily=7, keep_weekly=0)
    days = sorted({backup_time(n).date() for n in keep})  # type: ignore[union-attr]
    assert len(days) == 7 and days[-1] == (START + timedelta(days=41)).date()


def test_newest_is_always_kept_and_empty_is_empty() -> None:
    backups = calendar(3)
    assert select_retained(backups, keep_daily=0, keep_weekly=0) == {backups[-1][0]}
    assert select_retained([], keep_daily=7, keep_weekly=4) == set()


def test_prune_deletes_only_backups_beyond_retention(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, backup_keep_daily=2, backup_keep_weekly=1)
    settings.backups_dir.mkdir(parents=True)
    backups = calendar(5, per_day=(3,))
    for n, _ in backups:
        (settings.backups_dir / n).write_bytes(b"x")
    (settings.backups_dir / "notes.txt").write_text("not a backup")
    (settings.backups_dir / f"{name(START)[:-7]}_01.tar.gz").write_bytes(b"x")  # same second, second file
    kept, removed = prune_backups(settings, dry_run=True)
    assert len(removed) == 4 and all(p.exists() for p in removed)
    kept, removed = prune_backups(settings)
    assert sorted(p.name for p in kept) == [backups[-2][0], backups[-1][0]]
    assert not any(p.exists() for p in removed)
    assert sorted(p.name for p in settings.backups_dir.iterdir()) == sorted(
        [*(p.name for p in kept), "notes.txt"]
    )
