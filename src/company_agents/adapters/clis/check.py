"""``adapter check NAME`` and the ``doctor`` lines: can this adapter's CLI run here, and with what?

Each finding is a line: the binary (where it was found, its version), the key or login it will use
(its source, never its value), the provider endpoint, and whether our MCP server answers on the tool
port (a request with a test token must be refused with 401: the server is up and checks bearers).
"""

from __future__ import annotations

import subprocess
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass

from company_agents.adapters.clis.binaries import find_binary
from company_agents.adapters.clis.plan import choose_model, key_env
from company_agents.adapters.clis.registry import driver_for
from company_agents.adapters.config import AdapterConfig

VERSION_TIMEOUT = 20.0  # gemini --version takes ~3 s on a quiet machine
TEST_TOKEN = "ca_check_not_a_token"


@dataclass(frozen=True)
class Finding:
    name: str
    ok: bool
    detail: str
    fix: str = ""

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail, "fix": self.fix}


def binary_finding(adapter: AdapterConfig, environ: dict[str, str]) -> Finding:
    driver = driver_for(adapter.type)
    binary, where = find_binary(adapter.type, adapter.binary, driver.bin_env, environ)
    if binary is None:
        return Finding(
            "binary",
            False,
            f"no {adapter.type} binary (tried {where})",
            f"run scripts/install-agent-clis, or set {driver.bin_env} or the adapter's 'binary'",
        )
    # Its own HOME: some CLIs write state there even for --version.
    with tempfile.TemporaryDirectory(prefix="ca-adapter-check-") as home:
        env = {"PATH": environ.get("PATH", "/usr/bin:/bin"), "HOME": home, "TMPDIR": home}
        try:
            out = subprocess.run(
                driver.version_argv(binary),
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=VERSION_TIMEOUT,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return Finding("binary", False, f"{binary} ({where}) does not run: {exc}", "reinstall it")
    version = (out.stdout.strip() or out.stderr.strip()).splitlines()[-1:] or ["?"]
    if out.returncode != 0:
        return Finding(
            "binary", False, f"{binary} ({where}): --version exited {out.returncode}", "reinstall it"
        )
    return Finding("binary", True, f"{binary} ({where}), version {version[0]}")


def key_finding(adapter: AdapterConfig, company_secrets: set[str] | None) -> Finding:
    """Where the key comes from at run time; ``company_secrets``: the names a company holds (or None)."""
    var = key_env(adapter)
    order = (
        f"the agent's --secret-env {var}=…, else the company secret {var}, else the CLI's own login "
        "(subscription billing)"
    )
    if company_secrets is None:
        return Finding("key", True, f"{var}: {order}")
    if var in company_secrets:
        return Finding("key", True, f"{var}: the company secret {var} (unless the agent names another)")
    return Finding(
        "key",
        True,
        f"{var}: no company secret {var}; the agent's --secret-env, else the CLI's own login",
        f"`company-agents secret set --company SLUG {var}` to bill the company's key",
    )


def endpoint_finding(adapter: AdapterConfig, environ: dict[str, str]) -> Finding:
    driver = driver_for(adapter.type)
    url = adapter.base_url or environ.get(driver.base_url_env)
    where = "config" if adapter.base_url else driver.base_url_env if url else "the CLI's default"
    model = choose_model(adapter, None, environ)
    return Finding(
        "endpoint", True, f"{url or 'the provider'} ({where}); model {model} unless the agent has one"
    )


def mcp_finding(mcp_url: str, timeout: float = 5.0) -> Finding:
    request = urllib.request.Request(
        mcp_url,
        data=b'{"jsonrpc":"2.0","id":1,"method":"ping"}',
        headers={
            "Authorization": f"Bearer {TEST_TOKEN}",
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
        },
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            status = reply.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (urllib.error.URLError, OSError) as exc:
        return Finding("mcp server", False, f"{mcp_url} does not answer ({exc})", "start `company-agents up`")
    if status == 401:
        return Finding("mcp server", True, f"{mcp_url} answers and refuses a test token (401)")
    return Finding(
        "mcp server",
        False,
        f"{mcp_url} answered {status} to a test token (expected 401)",
        "is another service on the tool port? (`company-agents doctor`)",
    )


def check(
    adapter: AdapterConfig,
    environ: dict[str, str],
    *,
    mcp_url: str | None,
    company_secrets: set[str] | None = None,
) -> list[Finding]:
    findings = [
        binary_finding(adapter, environ),
        key_finding(adapter, company_secrets),
        endpoint_finding(adapter, environ),
    ]
    if mcp_url is not None:
        findings.append(mcp_finding(mcp_url))
    return findings
