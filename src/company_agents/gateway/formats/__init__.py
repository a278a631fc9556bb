"""One module per wire format: how a request names its model and output cap, where the key goes, how
a refusal looks to that provider's clients, and how usage is read from the answer as it streams by."""

from __future__ import annotations

from typing import Any, Protocol

from company_agents.costs.ledger import Usage


class UsageReader(Protocol):
    def feed(self, chunk: bytes) -> None:
        """A piece of the answer's body, as it passes (any split: lines may span chunks)."""

    def result(self) -> tuple[Usage | None, str | None]:
        """The usage read so far (None: none seen) and the model the provider said answered."""


class WireFormat(Protocol):
    name: str  # our path prefix: /anthropic, /openai, /gemini
    provider: str  # the pricing provider id
    default_upstream: str

    def model(self, path: str, body: dict[str, Any]) -> str | None: ...

    def max_tokens(self, body: dict[str, Any]) -> int | None: ...

    def metered(self, path: str) -> bool:
        """This path is a model call (the rest is passed through unmetered: model lists, token counts)."""

    def put_key(self, headers: dict[str, str], key: str) -> None: ...

    def error(self, status: int, kind: str, message: str, reason: str) -> dict[str, Any]: ...

    def reader(self, streaming: bool) -> UsageReader: ...


def formats() -> dict[str, WireFormat]:
    from company_agents.gateway.formats.anthropic import Anthropic
    from company_agents.gateway.formats.gemini import Gemini
    from company_agents.gateway.formats.openai import OpenAI

    return {f.name: f for f in (Anthropic(), OpenAI(), Gemini())}
