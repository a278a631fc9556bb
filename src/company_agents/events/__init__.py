"""The company event feed: audit events as public events, replayed by cursor, woken by a poll.

``types`` maps audit actions to public event types, ``feed`` reads the feed exactly once and in order
(docs/events.md), ``hub`` is the process's one watcher waking waiting streams, ``stream``
turns the feed into an SSE event sequence.
"""
