"""Example agents shipped with the package (stdlib only: they run in an agent's clean environment).

``python -m company_agents.examples.writer_agent`` is the reference agent of docs/agent-protocol.md.
"""

from __future__ import annotations
