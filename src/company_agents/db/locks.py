"""Every PostgreSQL advisory-lock key the product takes, in one place, so no two uses collide.

Keys are 64-bit integers spelling a short tag in ASCII ("CAMIG" …). Session-level locks
(``pg_advisory_lock``) are held across transactions and released explicitly; transaction-level ones
(``pg_advisory_xact_lock``) end with their transaction.
"""

from __future__ import annotations

# Migrations and imports: one process changes the schema at a time (transaction-level, exclusive).
MIGRATION = 0x43414D4947  # "CAMIG"
# The secret store: writers take it shared, a master-key rotation exclusive (transaction-level).
SECRETS_KEY = 0x4341534543  # "CASEC"
# Recording the master key that owns the database, the first time one is used with it: two new homes
# attaching at once must not each record (and create) a key of their own (transaction-level, exclusive).
DATABASE_KEY = 0x43414B4559  # "CAKEY"
# The audit sealer: one sealer at a time across orchestrators (transaction-level, try-lock).
SEALER = 0x434153454C  # "CASEL"
# Scheduled backups: whoever holds it backs up, the others skip the slot (session-level, try-lock).
BACKUP = 0x4341424B5550  # "CABKUP"
# Rejected agent calls audited once per window (``audit.rejections``): two-key locks
# (namespace, hashtext(key)), which live apart from the one-key locks above.
REJECTION_AUDIT_NAMESPACE = 0x43415252  # "CARR"
# Claims for one agent serialise on hashtextextended(<agent id>, AGENT_CLAIM_SEED) inside the SQL
# function ca_claim_tasks (migration 0004): a second key space, seeded so it cannot meet the ones above.
AGENT_CLAIM_SEED = 4242
