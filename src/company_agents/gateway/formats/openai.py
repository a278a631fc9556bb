"""OpenAI Responses (``POST …/responses``): usage from the ``response.completed`` event (or the body);
``input_tokens`` includes the cached ones, which are taken out (our input is uncached input)."""

from __future__ import annotations

from typing import Any

from company_agents.costs.ledger import Usage
from company_agents.gateway.formats.sse import JsonBody, SseEvents, as_dict, count


class OpenAIUsage:
    def __init__(self, streaming: bool) -> None:
        self.usage: Usage | None = None
        self.model: str | None = None
        self._json = None if streaming else JsonBody(self._response)
        self._sse = SseEvents(self._event) if streaming else None

    def feed(self, chunk: bytes) -> None:
        (self._sse or self._json).feed(chunk)  # type: ignore[union-attr]

    def _event(self, event: dict[str, Any]) -> None:
        if event.get("type") in ("response.completed", "response.incomplete", "response.failed"):
            self._response(as_dict(event.get("response")))

    def _response(self, response: dict[str, Any]) -> None:
        if isinstance(response.get("model"), str):
            self.model = response["model"]
        usage = as_dict(response.get("usage"))
        if not usage:
            return
        cached = count(as_dict(usage.get("input_tokens_details")).get("cached_tokens"))
        self.usage = Usage(
            input_tokens=max(count(usage.get("input_tokens")) - cached, 0),
            output_tokens=count(usage.get("output_tokens")),
            cache_read_tokens=cached,
            reasoning_tokens=count(as_dict(usage.get("output_tokens_details")).get("reasoning_tokens")),
        )

    def result(self) -> tuple[Usage | None, str | None]:
        if self._json is not None:
            self._json.close()
        return self.usage, self.model


class OpenAI:
    name = "openai"
    provider = "openai"
    default_upstream = "https://api.openai.com/v1"

    def model(self, path: str, body: dict[str, Any]) -> str | None:  # noqa: ARG002
        return body.get("model") if isinstance(body.get("model"), str) else None

    def max_tokens(self, body: dict[str, Any]) -> int | None:
        return count(body.get("max_output_tokens")) or None

    def metered(self, path: str) -> bool:
        return path.rstrip("/").endswith("/responses")

    def put_key(self, headers: dict[str, str], key: str) -> None:
        headers["authorization"] = f"Bearer {key}"

    def error(self, status: int, kind: str, message: str, reason: str) -> dict[str, Any]:  # noqa: ARG002
        return {"error": {"message": message, "type": kind, "code": reason, "param": None}}

    def reader(self, streaming: bool) -> OpenAIUsage:
        return OpenAIUsage(streaming)
