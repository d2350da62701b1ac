"""Ledgers: one protocol (base.Ledger), an embedded Stellar-rules ledger, and more to come."""
