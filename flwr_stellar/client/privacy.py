"""Flower's DP Mods beside the signing Mod: in which order, and the one adapter they need.

Flower composes ``ClientApp(mods=[a, b])`` as ``a(b(app))``: ``a`` sees the instruction first
and the reply last. The signature must cover what leaves the node, so every Mod that changes the
update (clipping, local noise) goes *after* the signing Mod in the list, inside it::

    from flwr.clientapp.mod import LocalDpMod, fixedclipping_mod
    from flwr_stellar import signing_mod, without_ledger_records

    app = ClientApp(mods=[signing_mod, without_ledger_records(fixedclipping_mod)])
    # or, local DP:
    app = ClientApp(mods=[signing_mod, LocalDpMod(clipping_norm, sensitivity, epsilon, delta)])

Before the signing Mod (``mods=[fixedclipping_mod, signing_mod]``) the clipping would change
the reply after it was signed: the server rejects every such reply as ``bad-signature``.

``fixedclipping_mod`` and ``adaptiveclipping_mod`` also insist that the instruction carries
exactly one ConfigRecord (they read the clipping norm from "the" one), and the LedgerStrategy
adds its own (the challenge, the signed terms, receipts): :func:`without_ledger_records` shows
the wrapped Mod the instruction as the app's strategy built it, and the rest of the chain the
instruction whole. ``LocalDpMod`` counts only ArrayRecords and needs no adapter.
"""

from __future__ import annotations

from flwr.app import Context, Message
from flwr.clientapp.typing import ClientAppCallable, Mod

__all__ = ["LEDGER_RECORD_PREFIX", "without_ledger_records"]

LEDGER_RECORD_PREFIX = "flwr-stellar."  # every record the plugin adds to an instruction


def without_ledger_records(mod: Mod) -> Mod:
    """``mod``, run on the instruction without the records flwr-stellar added to it.

    Parameters
    ----------
    mod : Mod
        A Mod that inspects the instruction's records as its strategy built them (Flower's
        ``fixedclipping_mod``, ``adaptiveclipping_mod``).

    Returns
    -------
    Mod
        The same Mod; the app and the Mods after it still receive every record.
    """

    def hidden(msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
        held = {k: msg.content[k] for k in msg.content if k.startswith(LEDGER_RECORD_PREFIX)}
        for key in held:
            del msg.content[key]

        def rest(inner: Message, ctx: Context) -> Message:
            for key, record in held.items():
                inner.content[key] = record
            return call_next(inner, ctx)

        try:
            return mod(msg, context, rest)
        finally:
            for key, record in held.items():
                msg.content[key] = record

    hidden.__name__ = f"without_ledger_records({getattr(mod, '__name__', type(mod).__name__)})"
    hidden.__doc__ = mod.__doc__
    return hidden
