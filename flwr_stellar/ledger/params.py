"""Strict readers for numbers and assets that arrive as text (HTTP paths, queries, cursors).

They accept exactly what Stellar/Horizon write and nothing ``str.isdigit`` or SQL ``LIKE``
would also let through, and refuse anything else with a LedgerError (a 400 problem in the HTTP
server), so malformed input is never a 500 and never silently read as something else.
"""

from __future__ import annotations

from stellar_sdk import StrKey

from flwr_stellar.ledger.base import LedgerError, asset_code_ok

_SHOWN = 40  # characters of a refused value quoted in the error


def _shown(text: str) -> str:
    return repr(text if len(text) <= _SHOWN else text[:_SHOWN] + "...")


def parse_uint(text: str, what: str, bound: int) -> int:
    """``text`` as an integer in ``[0, bound)``, or LedgerError naming ``what``.

    Only ASCII ``[0-9]+`` is a number here: ``str.isdigit`` also accepts Arabic-Indic,
    full-width or superscript digits, which ``int`` then reads as another number (``'١٢'``
    is 12) or refuses with a ValueError (``'²'``), a 500 in the HTTP server. The length is
    checked before ``int``, so a huge string costs nothing.

    Parameters
    ----------
    text : str
        A query parameter, path segment or cursor as received.
    what : str
        What it is, for the error message (``limit``, ``cursor``, ``ledger sequence``).
    bound : int
        The first value that is too large.

    Returns
    -------
    int
        The value.

    Raises
    ------
    LedgerError
        When ``text`` is not ASCII digits or not below ``bound``.
    """
    ok = 0 < len(text) <= len(str(bound)) and text.isascii() and text.isdigit()
    if not ok or int(text) >= bound:
        raise LedgerError(f"invalid {what} {_shown(text)}: expected an integer in [0, {bound})")
    return int(text)


def parse_asset(asset: str) -> tuple[str, str]:
    """``(code, issuer)`` of a ``CODE:ISSUER`` asset string, or LedgerError.

    Asset codes are compared exactly (case-sensitive, as on Stellar): ``dlc`` and ``DLCX``
    are other assets than ``DLC``. Validating first means the code can never carry a
    wildcard or separator into a lookup.

    Parameters
    ----------
    asset : str
        Horizon's canonical asset string, e.g. ``DLC:G...``.

    Raises
    ------
    LedgerError
        When the code is not 1-12 ASCII letters/digits or the issuer not a ``G...`` strkey.
    """
    code, _, issuer = asset.partition(":")
    if not asset_code_ok(code) or not StrKey.is_valid_ed25519_public_key(issuer):
        raise LedgerError(f"asset must be CODE:ISSUER, got {_shown(asset)}")
    return code, issuer
