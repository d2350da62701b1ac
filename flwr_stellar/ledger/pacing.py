"""Submitting at the pace a public Stellar network accepts.

Validators cap the operations in a ledger (mid-2026: pubnet 1,000, testnet 200; a ledger closes
every ~5 s). A run paying hundreds of providers at once would otherwise see its transactions
left out of full ledgers (Horizon: 504, then ``tx_too_late``) and, under surge pricing,
``tx_insufficient_fee``. The pacer keeps this sender's operations within the limit over any
ledger-long window; the fee bid rises (doubling, capped) when the network answers that the
bid was too low or the transaction never made it in, and is what every rebuilt envelope uses.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable

from flwr_stellar.ledger.tx import BASE_FEE

LEDGER_CLOSE_S = 5.0
MAX_FEE_PER_OP = 10_000  # stroops (0.001 XLM): what a payment may cost at most under surge


class LedgerPacer:
    """At most ``ops_per_ledger`` of our operations in any ``ledger_close_s`` window.

    Parameters
    ----------
    ops_per_ledger : int
        The network's per-ledger operation limit, or the share of it this sender may use
        (``LedgerSettings`` asks for >= 100 so that a full transaction fits).
    ledger_close_s : float
        Seconds between ledger closes.
    clock, sleep : callables
        Injected for tests.
    """

    def __init__(
        self,
        ops_per_ledger: int,
        ledger_close_s: float = LEDGER_CLOSE_S,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if ops_per_ledger < 1:
            raise ValueError(f"ops_per_ledger must be >= 1, got {ops_per_ledger}")
        if ledger_close_s <= 0:
            raise ValueError(f"ledger_close_s must be > 0, got {ledger_close_s}")
        self.ops_per_ledger = ops_per_ledger
        self.ledger_close_s = ledger_close_s
        self._clock, self._sleep = clock, sleep
        self._sent: collections.deque[tuple[float, int]] = collections.deque()
        self.waited_s = 0.0

    def _expire(self, now: float) -> None:
        while self._sent and self._sent[0][0] <= now - self.ledger_close_s:
            self._sent.popleft()

    def before(self, ops: int) -> float:
        """Block until ``ops`` more operations fit in the window; return the seconds waited."""
        if ops > self.ops_per_ledger:
            raise ValueError(f"{ops} operations can never fit a {self.ops_per_ledger}-op ledger")
        waited = 0.0
        while True:
            now = self._clock()
            self._expire(now)
            if sum(n for _, n in self._sent) + ops <= self.ops_per_ledger:
                self.waited_s += waited
                return waited
            pause = self._sent[0][0] + self.ledger_close_s - now
            self._sleep(max(pause, 0.01))
            waited += max(pause, 0.01)

    def after(self, ops: int) -> None:
        """Count ``ops`` as sent now (after the answer: later than the ledger saw them, so the
        window errs on the safe side)."""
        self._sent.append((self._clock(), ops))


class FeeBid:
    """The fee bid per operation: the base fee until the network asks for more.

    Parameters
    ----------
    maximum : int
        Highest bid per operation in stroops; at the cap the anchoring keeps retrying at that
        price rather than paying whatever surge pricing asks.
    """

    def __init__(self, maximum: int = MAX_FEE_PER_OP) -> None:
        if maximum < BASE_FEE:
            raise ValueError(f"maximum fee per operation must be >= {BASE_FEE}, got {maximum}")
        self.maximum = maximum
        self.per_op = BASE_FEE

    def outbid(self) -> bool:
        """Double the bid (capped); False when already at the cap."""
        if self.per_op >= self.maximum:
            return False
        self.per_op = min(2 * self.per_op, self.maximum)
        return True
