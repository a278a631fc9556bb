"""The ``http`` adapter: a remote agent spoken to over ``ca-http-v1`` (docs/agent-protocol.md
§ca-http-v1). Nothing is started locally; the runner (``adapters.runner``) keeps the lease, the
timeouts, the budgets and every fenced write, and this package only opens the session, reads its event
stream (resuming a dropped one with ``Last-Event-ID``) and tells the remote agent to stop."""
