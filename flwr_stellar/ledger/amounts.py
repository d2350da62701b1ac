"""Stellar amounts: the one codec between int64 stroops and decimal strings.

An amount crosses several boundaries on its way through a run: the run config's ``"0.5"`` becomes
stroops, Horizon's ``"12.5000000"`` becomes an int64 and back, and stroops become text again in
payments, logs, tables and reports. Stellar's rule (an int64 count of 1e-7 units, so at most
seven decimals) must be applied the same way at every one of them, or a payout that audits on one
side will not on the other. The ledger layer is the lowest that needs it, so this module lives
here and everything above (payments, audit, report, strategies) imports it from here.
"""

from __future__ import annotations

from decimal import Decimal, DecimalException

STROOPS_PER_UNIT = 10_000_000  # 1 XLM (or 1 unit of any asset) = 10^7 stroops
DECIMALS = 7
MAX_AMOUNT = 2**63 - 1  # int64 stroops
MIN_AMOUNT = -(2**63)

__all__ = [
    "DECIMALS",
    "MAX_AMOUNT",
    "MIN_AMOUNT",
    "STROOPS_PER_UNIT",
    "AmountError",
    "format_amount",
    "format_stroops",
    "parse_amount",
    "parse_stroops",
    "stroops_to_units",
]


class AmountError(ValueError):
    """A decimal string that is not a Stellar amount (a ValueError, so callers that treat
    unreadable input as ``ValueError`` keep working)."""


def parse_stroops(text: str) -> int:
    """A decimal string -> stroops, strictly: any int64 with at most 7 decimals.

    This is the reader for amounts someone else wrote (Horizon JSON, ledger answers), where
    zero and, in principle, negative values are legitimate and a bad value is an error to
    surface, not a setting to reject quietly.

    Parameters
    ----------
    text : str
        E.g. ``"12.5000000"``, ``"0.5"``, ``"100"`` (Python's decimal syntax).

    Returns
    -------
    int
        The amount in stroops.

    Raises
    ------
    AmountError
        Not a number, more than 7 decimals, or outside int64; the message names ``text``.
    """
    if not isinstance(text, str):
        raise AmountError(f"amount must be a decimal string, got {text!r}")
    try:
        value = Decimal(text.strip()) * STROOPS_PER_UNIT
    except DecimalException:  # not a number, or beyond Decimal's own exponent range
        raise AmountError(f"amount {text!r} is not a decimal number") from None
    if not value.is_finite():
        raise AmountError(f"amount {text!r} is not finite")
    if value != value.to_integral_value():
        raise AmountError(f"amount {text!r} has more than {DECIMALS} decimals")
    if not MIN_AMOUNT <= value <= MAX_AMOUNT:
        raise AmountError(f"amount {text!r} does not fit an int64 of stroops")
    return int(value)


def parse_amount(text: str) -> int | None:
    """A positive amount (``'100'`` or ``'0.5'`` of a coin) -> stroops, or None.

    The lenient form for settings, which validate in ``__post_init__`` and name the field
    themselves: anything that is not a positive amount with at most 7 decimals is None.

    Parameters
    ----------
    text : str
        The amount as a user wrote it.

    Returns
    -------
    int or None
        Stroops (> 0), or None when ``text`` is not a positive Stellar amount.
    """
    try:
        stroops = parse_stroops(text)
    except AmountError:
        return None
    return stroops if stroops > 0 else None


def format_amount(stroops: int) -> str:
    """Stroops -> the shortest exact decimal string (``5_000_000`` -> ``'0.5'``).

    For people (logs, tables, audit findings) and for stellar_sdk's operation builders, which
    take amounts as strings: it is exact, unlike ``str(stroops / 1e7)``.

    Parameters
    ----------
    stroops : int
        An int64 amount.
    """
    return format_stroops(stroops).rstrip("0").rstrip(".")


def format_stroops(stroops: int) -> str:
    """Stroops -> a decimal string with exactly 7 decimals (``'12.5000000'``), as Horizon
    sends amounts, so the embedded server's JSON reads like the real thing.

    Parameters
    ----------
    stroops : int
        An int64 amount.
    """
    sign = "-" if stroops < 0 else ""
    whole, frac = divmod(abs(stroops), STROOPS_PER_UNIT)
    return f"{sign}{whole}.{frac:0{DECIMALS}d}"


def stroops_to_units(stroops: int) -> float:
    """Stroops -> coins as a float, for plots and metrics only (never for a payment: a float
    does not hold every int64 exactly; use :func:`format_amount` for that).

    Parameters
    ----------
    stroops : int
        An amount in stroops.
    """
    return stroops / STROOPS_PER_UNIT
