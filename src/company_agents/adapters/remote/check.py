"""``adapter check NAME`` for an http adapter: where the remote agent is, how we authenticate (the
secret's name or the certificate's files, never a value), and whether it answers ``GET /healthz``."""

from __future__ import annotations

import os

import httpx

from company_agents.adapters.clis.check import Finding
from company_agents.adapters.config import HTTP_PROTOCOL, AdapterConfig
from company_agents.adapters.remote.client import ssl_context


def auth_finding(adapter: AdapterConfig, company_secrets: set[str] | None) -> Finding:
    if adapter.auth_secret is not None:
        name = adapter.auth_secret
        if company_secrets is None:
            return Finding("auth", True, f"bearer: the company secret {name} (read at each session start)")
        if name in company_secrets:
            return Finding("auth", True, f"bearer: the company secret {name}")
        return Finding(
            "auth",
            False,
            f"bearer: the company has no secret {name}",
            f"`company-agents secret set --company SLUG {name}`",
        )
    if adapter.cert_path is not None:
        missing = [p for p in (adapter.cert_path, adapter.key_path) if p and not os.access(p, os.R_OK)]
        if missing:
            return Finding("auth", False, f"mtls: cannot read {', '.join(missing)}", "fix certPath/keyPath")
        return Finding("auth", True, f"mtls: {adapter.cert_path} and {adapter.key_path}")
    return Finding("auth", True, "none (the remote agent accepts any caller)")


def reachable_finding(adapter: AdapterConfig, timeout: float = 5.0) -> Finding:
    url = f"{(adapter.base_url or '').rstrip('/')}/healthz"
    try:
        with httpx.Client(verify=ssl_context(adapter), timeout=timeout) as client:
            status = client.get(url).status_code
    except (httpx.HTTPError, OSError) as exc:
        return Finding(
            "remote agent", False, f"{url} does not answer ({type(exc).__name__})", "is it running?"
        )
    if status == 200:
        return Finding("remote agent", True, f"{url} answers 200")
    return Finding(
        "remote agent", False, f"{url} answered {status} (expected 200)", "is this a ca-http-v1 agent?"
    )


def check(adapter: AdapterConfig, *, company_secrets: set[str] | None = None) -> list[Finding]:
    return [
        Finding(
            "endpoint",
            True,
            f"{adapter.base_url} ({HTTP_PROTOCOL}; a dropped stream is resumed up to "
            f"{adapter.reconnects} times)",
        ),
        auth_finding(adapter, company_secrets),
        reachable_finding(adapter),
    ]
