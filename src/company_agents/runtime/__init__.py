"""What runs inside ``company-agents up``: the orchestrator that composes the parts, the scheduler, and
every background loop (reaper, housekeeping, audit sealer, scheduled backups), all on ``loop.run_loop``.
The work each loop does is a domain function (``leases.reap_expired``, ``audit.seal.seal_tick`` …); this
package only decides when it runs."""
