"""The browser dashboard on ``127.0.0.1:3101``: server-rendered pages over the domain modules, live
through one SSE stream per company (docs/dashboard.md)."""
