"""Roll-up windows: the fiscal period or ``--since``/``--until``, as instants in the company's time zone.

Forms (docs/design.md §6): ISO dates and times (a naive one is read in the company's time zone),
relative ``30m``/``1h``/``24h``/``7d``/``30d``/``2w`` (that long before now), and the named
``today``, ``yesterday``, ``this_week`` (from Monday), ``this_month``, ``this_quarter``. A named form as
``--since`` starts at its start and, without ``--until``, ends at its end; as ``--until`` it means its end.
Without either, the window is the fiscal period so far (a calendar month, or the last 30 days).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from company_agents.errors import InvalidInput

_RELATIVE = re.compile(r"^(\d{1,6})\s*([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
NAMED = ("today", "yesterday", "this_week", "this_month", "this_quarter")
# As ``companies.fiscal_period`` spells them.
FISCAL_PERIODS = ("monthly", "rolling-30d")
FORMS = "an ISO date or time, 1h, 24h, 7d, 30d, today, yesterday, this_week, this_month or this_quarter"


@dataclass(frozen=True)
class Window:
    """``[start, end)``. ``period_end`` is where a forecast projects to (the end of the named span or of
    the fiscal period), ``None`` for a window that ends in the past or at a relative ``now``."""

    start: datetime
    end: datetime
    label: str
    period_end: datetime | None = None


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(f"unknown time zone {name!r}", field="time_zone") from None


def day_start(day: date, tz: ZoneInfo) -> datetime:
    """Local midnight of ``day`` (the first instant of the day, across DST changes)."""
    return datetime.combine(day, time.min, tzinfo=tz)


def local_day(moment: datetime, tz: ZoneInfo) -> date:
    return moment.astimezone(tz).date()


def _month_start(day: date) -> date:
    return day.replace(day=1)


def _add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def named_span(name: str, now: datetime, tz: ZoneInfo) -> tuple[datetime, datetime]:
    today = local_day(now, tz)
    if name == "today":
        first, last = today, today + timedelta(days=1)
    elif name == "yesterday":
        first, last = today - timedelta(days=1), today
    elif name == "this_week":
        first = today - timedelta(days=today.weekday())
        last = first + timedelta(days=7)
    elif name == "this_month":
        first = _month_start(today)
        last = _add_months(first, 1)
    elif name == "this_quarter":
        first = date(today.year, (today.month - 1) // 3 * 3 + 1, 1)
        last = _add_months(first, 3)
    else:
        raise InvalidInput(f"unknown window {name!r}: use {FORMS}", field="since")
    return day_start(first, tz), day_start(last, tz)


def _moment(value: str, now: datetime, tz: ZoneInfo, *, as_end: bool) -> tuple[datetime, datetime | None]:
    """The instant ``value`` names, and for a named span the end it implies."""
    text = value.strip().lower()
    match = _RELATIVE.match(text)
    if match:
        try:
            return now - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))}), None
        except OverflowError:  # 999999w: before year 1
            raise InvalidInput(f"{value!r} reaches before the year 1", field="since/until") from None
    if text in NAMED:
        start, end = named_span(text, now, tz)
        return (end, None) if as_end else (start, end)
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        try:
            moment = datetime.combine(date.fromisoformat(value.strip()), time.min)
        except ValueError:
            raise InvalidInput(f"cannot read the time {value!r}: use {FORMS}", field="since/until") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=tz)), None


def fiscal_period(now: datetime, tz: ZoneInfo, kind: str = "monthly") -> Window:
    """The fiscal period so far: this calendar month in the company's zone, or the last 30 days."""
    if kind == "rolling-30d":
        # Whole days (today and the 29 before it), so the period is read from the counters alone.
        start = day_start(local_day(now, tz) - timedelta(days=29), tz)
        return Window(start, now, "fiscal period (the last 30 days)", None)
    if kind != "monthly":
        raise InvalidInput(f"fiscal period must be one of {', '.join(FISCAL_PERIODS)}", field="period")
    start, end = named_span("this_month", now, tz)
    return Window(start, now, f"fiscal period {start:%Y-%m}", end)


def window(
    since: str | None, until: str | None, *, now: datetime, tz: ZoneInfo, fiscal: str = "monthly"
) -> Window:
    """The window the options name (see the module docstring); ``end`` never lies past ``now``."""
    if since is None and until is None:
        return fiscal_period(now, tz, fiscal)
    if since is None:
        start = fiscal_period(now, tz, fiscal).start
        implied: datetime | None = None
    else:
        start, implied = _moment(since, now, tz, as_end=False)
    end = _moment(until, now, tz, as_end=True)[0] if until is not None else (implied or now)
    if end <= start:
        raise InvalidInput(f"the window ends before it starts ({since!r} … {until!r})", field="since/until")
    label = since if until is None and since is not None else f"{since or 'period start'} … {until or 'now'}"
    period_end = end if end > now else None
    return Window(start, min(end, now), label, period_end)
