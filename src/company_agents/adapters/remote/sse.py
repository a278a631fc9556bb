"""A server-sent events reader (the WHATWG event-stream format), fed one line at a time.

Only what ca-http-v1 uses is kept: ``id``, ``event`` and ``data`` (lines joined with ``\\n``); comments
(``: ping``) and ``retry`` are skipped. A message is complete at the blank line that ends it, so a stream
cut mid-message yields nothing of that message.
"""

from __future__ import annotations

from dataclasses import dataclass

# One message may not grow without bound: a remote agent that never sends the blank line is malformed.
MAX_MESSAGE_CHARS = 1 << 20


class SseTooLarge(ValueError):
    pass


@dataclass(frozen=True)
class SseMessage:
    id: str | None
    event: str | None
    data: str


class SseParser:
    def __init__(self) -> None:
        self._id: str | None = None
        self._event: str | None = None
        self._data: list[str] = []
        self._size = 0

    def feed_line(self, line: str) -> SseMessage | None:
        """The message this line completes, if it does."""
        line = line.rstrip("\r\n")
        if not line:
            if not self._data and self._id is None and self._event is None:
                return None
            message = SseMessage(self._id, self._event, "\n".join(self._data))
            self._id, self._event, self._data, self._size = None, None, [], 0
            return message
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        self._size += len(line)
        if self._size > MAX_MESSAGE_CHARS:
            raise SseTooLarge(f"an event of more than {MAX_MESSAGE_CHARS} characters")
        if name == "data":
            self._data.append(value)
        elif name == "id":
            self._id = value
        elif name == "event":
            self._event = value
        return None
