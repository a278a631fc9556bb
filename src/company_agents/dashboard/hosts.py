"""Where the dashboard listens and whether that is allowed: no web framework here, so `up` checks the
host before anything starts and before FastAPI is loaded."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from company_agents.settings import Settings


def dashboard_host(settings: Settings) -> str:
    """Where the dashboard listens: ``--dashboard-host`` when given (the private-network mode when it
    is not loopback, ``private_network``); else the bind host when that is loopback, else loopback all
    the same: the API may serve the network without the dashboard following it there."""
    from company_agents.settings import is_loopback

    if settings.dashboard_host:
        return settings.dashboard_host
    return settings.bind_host if is_loopback(settings.bind_host) else "127.0.0.1"


def private_network(settings: Settings) -> bool:
    """Whether other machines can reach the dashboard: then it asks for the dashboard password."""
    from company_agents.settings import is_loopback

    return not is_loopback(dashboard_host(settings))


def check_dashboard_host(settings: Settings) -> str | None:
    """Refuse a host the dashboard cannot serve safely; the password hash when it needs one.

    An unspecified address (``0.0.0.0``, ``::``) is refused: the Host check (DNS rebinding) needs the
    one name browsers use, so the operator names it (``--dashboard-host 192.168.1.20``)."""
    import ipaddress

    from company_agents.dashboard.password import require_password
    from company_agents.errors import ConfigError

    host = dashboard_host(settings).strip("[]")
    try:
        unspecified = ipaddress.ip_address(host).is_unspecified
    except ValueError:
        unspecified = False
    if unspecified:
        raise ConfigError(
            f"--dashboard-host {host} is every address: name the one browsers will use "
            "(the dashboard answers only for that Host)",
            field="dashboard_host",
        )
    return require_password(settings) if private_network(settings) else None


def dashboard_url(settings: Settings, access_token: str | None = None) -> str:
    """The dashboard's address; with the access token, the link that lets a browser in."""
    base = f"http://{dashboard_host(settings)}:{settings.dashboard_port}"
    return f"{base}/?token={access_token}" if access_token else base
