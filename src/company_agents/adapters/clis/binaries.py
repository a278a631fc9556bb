"""Where an agent CLI's binary is: the adapter's ``binary``, its ``*_BIN`` variable, the install cache
(``scripts/install-agent-clis``), then ``PATH``; the first that exists wins."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

CACHE_ENV = "AGENT_CLIS_DIR"
# Not under /root: agents run as their own OS users there and cannot traverse it (docs/security.md).
DEFAULT_CACHE = Path("/opt/company-agents/agent-clis")


@dataclass(frozen=True)
class Pinned:
    package: str
    version: str
    path: str  # inside the package's install prefix
    command: str  # its name on PATH

    @property
    def spec(self) -> str:
        return f"{self.package}@{self.version}"

    def prefix(self, cache: Path) -> Path:
        return cache / self.spec.replace("/", "+")


# The versions CI installs and the tests run (docs/adapters.md). Codex runs its native binary directly:
# the Node wrapper does not pass SIGKILL on, and costs 0.1 s per start.
PINNED = {
    "claude-code": Pinned("@anthropic-ai/claude-code", "2.1.332", "node_modules/.bin/claude", "claude"),
    "codex": Pinned(
        "@openai/codex",
        "0.171.0",
        "node_modules/@openai/codex-linux-x64/vendor/x86_64-unknown-linux-musl/bin/codex",
        "codex",
    ),
    "gemini-cli": Pinned("@google/gemini-cli", "0.61.0", "node_modules/.bin/gemini", "gemini"),
}


def cache_dir(environ: dict[str, str]) -> Path:
    return Path(environ.get(CACHE_ENV) or DEFAULT_CACHE)


def cached_binary(kind: str, environ: dict[str, str]) -> Path | None:
    """The pinned install of ``kind`` in the cache, when it is complete."""
    pinned = PINNED[kind]
    prefix = pinned.prefix(cache_dir(environ))
    path = prefix / pinned.path
    return path if (prefix / ".complete").exists() and os.access(path, os.X_OK) else None


def find_binary(kind: str, configured: str, bin_env: str, environ: dict[str, str]) -> tuple[str | None, str]:
    """The binary to run and where it came from (``config``, the variable's name, ``cache``, ``PATH``);
    ``None`` and what was tried when there is none."""
    if configured:
        return configured, "config"
    if value := environ.get(bin_env):
        return value, bin_env
    if (cached := cached_binary(kind, environ)) is not None:
        return str(cached), "cache"
    if found := shutil.which(PINNED[kind].command, path=environ.get("PATH")):
        return found, "PATH"
    tried = f"{bin_env}, {PINNED[kind].prefix(cache_dir(environ))}, {PINNED[kind].command} on PATH"
    return None, tried
