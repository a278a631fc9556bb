"""The model gateway (docs/gateway.md): agents' model calls go through the orchestrator, which adds the
provider key on the way out, reserves each request's worst case against the budgets before forwarding,
streams the answer through as it arrives and meters the usage it carries, once per request."""
