"""The company event feed: audit events as public events, replayed by cursor, woken by NOTIFY.

``types`` maps audit actions to public event types, ``feed`` reads the feed exactly once and in order
(docs/events.md), ``hub`` is the process's one LISTEN connection waking waiting streams, ``stream``
turns the feed into an SSE event sequence.
"""
