"""A data provider's wallet: what each run's pseudonym earned, and collecting it.

``holdings`` lists, per run in the node's journal, the pseudonym, its coin on the ledger (on
its trustline and in claimable balances naming it) and whether it was collected; ``collect``
moves all of it to one address with fee bumps (the pseudonym holds no XLM), removes the
trustline and merges the pseudonym so the sponsor's reserves come back.
"""

from flwr_stellar.wallet.collect import CollectError, Step, collect, plan
from flwr_stellar.wallet.holdings import Holding, Recovery, holdings, read_holding

__all__ = [
    "CollectError",
    "Holding",
    "Recovery",
    "Step",
    "collect",
    "holdings",
    "plan",
    "read_holding",
]
