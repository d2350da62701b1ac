"""Re-derive a run from its manifests and the ledger, trusting neither the server nor its logs."""

from flwr_stellar.audit.run_audit import AuditReport, Finding, audit_run, model_file_hash

__all__ = ["AuditReport", "Finding", "audit_run", "model_file_hash"]
