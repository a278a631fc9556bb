"""Money: the ledger of cost entries, their daily counters, and how agents' reports become entries."""
