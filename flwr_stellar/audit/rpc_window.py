"""What an audit through Stellar RPC can and cannot see: the retention window.

An RPC server keeps transactions for a window of recent ledgers only (about 7 days on SDF's).
A round anchored before that window is not on the ledger *as far as RPC can tell*, yet it was
anchored and paid; reporting it as missing or unpaid would accuse an honest operator. So when
a manifest's anchor is not in the window, the audit (and ``node check``) first asks whether it
could be older than the window, and if so says exactly that, naming what can answer instead
(a Horizon URL or a history archive). The finding still fails: nothing was verified.
"""

from __future__ import annotations

from flwr_stellar.ledger.base import Ledger
from flwr_stellar.ledger.rpc import HistoryWindow, RpcLedger

GENESIS = 1  # a window starting here holds the network's whole history


def anchor_outside_window(
    window: HistoryWindow, distributor_created: int | None, anchor_ledger: int | None = None
) -> bool:
    """Whether a manifest whose anchor the window does not show may be anchored before it.

    Parameters
    ----------
    window : HistoryWindow
        The RPC's ``oldestLedger`` .. ``latestLedger``.
    distributor_created : int or None
        The ledger in the window where the run's distributor account was created, or None
        when its creation is not in the window (it existed before ``oldestLedger``).
    anchor_ledger : int, optional
        The anchor's ledger when known from elsewhere (an operator's outbox or run record).

    Returns
    -------
    bool
        True: the anchor may be older than the window, so its absence proves nothing. False:
        the window holds everything the distributor ever did (its creation, or the whole
        chain), so an anchor it lacks is missing.
    """
    if window.oldest <= GENESIS:
        return False
    if anchor_ledger is not None:
        return anchor_ledger < window.oldest
    return distributor_created is None


def outside_window_note(ledger: Ledger, distributor: str) -> str | None:
    """The plain explanation to report instead of "missing" when ``ledger`` is an RPC whose
    window may not reach back to the run's anchors; None when absence means absence (any
    other backend, or a window that holds the distributor's whole history).

    Parameters
    ----------
    ledger : Ledger
        The ledger the audit reads.
    distributor : str
        The run's paying account (``G...``).
    """
    if not isinstance(ledger, RpcLedger):
        return None
    window = ledger.history_window()
    created = None if window.oldest <= GENESIS else ledger.created_in_window(distributor)
    if not anchor_outside_window(window, created):
        return None
    return (
        f"outside the RPC window: {ledger.location} keeps only {window} (oldestLedger "
        f"{window.oldest}) and the distributor {distributor} existed before it, so this round "
        "may have been anchored before the window; it is not reported as missing or unpaid, "
        "it is unchecked. Audit it with a Horizon URL (--ledger URL) or a history archive"
    )
