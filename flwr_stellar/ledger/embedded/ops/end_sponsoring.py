"""EndSponsoringFutureReserves (see sponsoring.py)."""

from flwr_stellar.ledger.embedded.ops.sponsoring import THRESHOLD
from flwr_stellar.ledger.embedded.ops.sponsoring import apply_end as apply

__all__ = ["THRESHOLD", "apply"]
