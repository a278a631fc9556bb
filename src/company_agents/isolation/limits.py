"""Resource limits per agent process (setrlimit), and telling a run that hit one (``resource_limit``).

The limits are POSIX rlimits, set between fork and exec and inherited by every process the agent starts:

- CPU seconds (RLIMIT_CPU), per process: the soft limit sends SIGXCPU, the hard one (a few seconds later)
  SIGKILL;
- address space (RLIMIT_AS): an allocation beyond it fails (``MemoryError``, ``std::bad_alloc``,
  "JavaScript heap out of memory");
- open files (RLIMIT_NOFILE): ``open`` fails with EMFILE, "Too many open files";
- processes (RLIMIT_NPROC): ``fork`` fails with EAGAIN. The kernel counts it per real uid, so it is applied
  in ``user`` mode only, where the uid belongs to the agent.

How a run that hit a limit is told from a crash, best effort: death by SIGXCPU (or bwrap's exit code for
it, 128 + SIGXCPU) is the CPU limit; otherwise the last lines of the agent's stderr are matched against
what the runtimes print when an allocation, an ``open`` or a ``fork`` fails. A SIGKILL from the hard CPU
limit cannot be told from any other SIGKILL and stays a crash; the soft limit comes first and is enough.
"""

from __future__ import annotations

import re
import resource
import signal
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from company_agents.errors import ConfigError
from company_agents.settings import Settings

# config.json name → Limits field
ADAPTER_KEYS = {
    "cpuSeconds": "cpu_seconds",
    "addressSpaceBytes": "address_space_bytes",
    "openFiles": "open_files",
    "processes": "processes",
}
CPU_HARD_MARGIN = 5  # seconds between SIGXCPU and SIGKILL

STDERR_SIGNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "address space",
        re.compile(
            r"MemoryError|std::bad_alloc|heap out of memory|Cannot allocate memory|out of memory"
            r"|failed to (?:allocate|reserve)|mmap failed",
            re.IGNORECASE,
        ),
    ),
    ("open files", re.compile(r"Too many open files|EMFILE")),
    (
        "processes",
        re.compile(
            r"fork: (?:retry: )?Resource temporarily unavailable|BlockingIOError|EAGAIN.*(?:fork|spawn)"
        ),
    ),
)


@dataclass(frozen=True)
class Limits:
    """0 (or ``None``) turns a limit off."""

    cpu_seconds: int = 0
    address_space_bytes: int = 0
    open_files: int = 0
    processes: int = 0

    def to_dict(self) -> dict[str, int]:
        return {camel: getattr(self, attr) for camel, attr in ADAPTER_KEYS.items()}


def parse_adapter_limits(adapter: str, raw: Any) -> dict[str, int]:
    """The ``limits`` object of an adapter entry in config.json; ``ConfigError`` when malformed."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"adapter {adapter!r}: 'limits' must be an object")
    out: dict[str, int] = {}
    for key, value in raw.items():
        if key not in ADAPTER_KEYS:
            raise ConfigError(
                f"adapter {adapter!r}: unknown limit {key!r} (known: {', '.join(ADAPTER_KEYS)})"
            )
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ConfigError(f"adapter {adapter!r}: limit {key!r} must be a whole number ≥ 0 (0: none)")
        out[key] = value
    return out


def limits_for(settings: Settings, overrides: dict[str, int]) -> Limits:
    """The settings' limits with the adapter's overrides on top."""
    values = {
        "cpu_seconds": settings.agent_cpu_seconds,
        "address_space_bytes": settings.agent_address_space_bytes,
        "open_files": settings.agent_open_files,
        "processes": settings.agent_processes,
    }
    for camel, value in overrides.items():
        values[ADAPTER_KEYS[camel]] = value
    return Limits(**values)


def rlimits(limits: Limits, *, per_uid: bool) -> list[tuple[int, int, int]]:
    """``(resource, soft, hard)`` for each limit that is on; RLIMIT_NPROC only when the uid is the agent's."""
    out: list[tuple[int, int, int]] = []
    if limits.cpu_seconds:
        out.append((resource.RLIMIT_CPU, limits.cpu_seconds, limits.cpu_seconds + CPU_HARD_MARGIN))
    if limits.address_space_bytes:
        out.append((resource.RLIMIT_AS, limits.address_space_bytes, limits.address_space_bytes))
    if limits.open_files:
        out.append((resource.RLIMIT_NOFILE, limits.open_files, limits.open_files))
    if limits.processes and per_uid:
        out.append((resource.RLIMIT_NPROC, limits.processes, limits.processes))
    return out


def apply_rlimits(wanted: list[tuple[int, int, int]]) -> Callable[[], None]:
    """A ``preexec_fn`` step setting the limits; a hard limit already lower than asked is kept."""

    def preexec() -> None:
        for res, soft, hard in wanted:
            _, cur_hard = resource.getrlimit(res)
            if cur_hard != resource.RLIM_INFINITY:
                hard = min(hard, cur_hard)
                soft = min(soft, hard)
            resource.setrlimit(res, (soft, hard))

    return preexec


def limit_hit(exit_code: int | None, stderr_tail: list[str]) -> str | None:
    """Which limit ended the run, when that can be told (see the module docstring); else ``None``."""
    if exit_code in (-signal.SIGXCPU, 128 + signal.SIGXCPU):
        return "cpu time"
    if exit_code == 0:
        return None
    text = "\n".join(stderr_tail)
    for name, pattern in STDERR_SIGNS:
        if pattern.search(text):
            return name
    return None
