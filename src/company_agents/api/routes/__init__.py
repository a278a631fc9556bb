"""The ``/v1`` routers, one module per resource (``app.ROUTERS`` lists them)."""
