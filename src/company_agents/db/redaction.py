"""Passwords out of URLs, DSNs and messages quoting them: light to import, for the CLI's error path."""

from __future__ import annotations

import re

# Every way libpq accepts a password in a connection string (https://www.postgresql.org/docs/current/
# libpq-connect.html#LIBPQ-CONNSTRING): the URL's userinfo, a ``password=`` (or ``sslpassword=``) query
# parameter, and a ``password=…`` keyword of a key=value DSN, quoted or not.
_USERINFO_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:@/\s?#]*):[^\s/?#]*@", re.IGNORECASE)
_QUERY_PASSWORD = re.compile(r"(?P<head>[?&](?:ssl)?password=)[^&#\s]*", re.IGNORECASE)
_KEYWORD_PASSWORD = re.compile(
    r"(?P<head>(?:^|(?<=[\s,;(]))(?:ssl)?password\s*=\s*)(?:'(?:[^'\\]|\\.)*'?|\S+)", re.IGNORECASE
)


def redact(text: str) -> str:
    """``text`` (a URL, a DSN, or a message quoting one) with every password replaced by ``***``."""
    text = _USERINFO_PASSWORD.sub(r"\g<head>:***@", text)
    text = _QUERY_PASSWORD.sub(r"\g<head>***", text)
    return _KEYWORD_PASSWORD.sub(r"\g<head>***", text)
