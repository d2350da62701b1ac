"""Text from the other side, made safe to log or to write into a manifest.

A node's refusal reason (or a server's field echoed in a node's error) is whatever the peer
chose to send: megabytes, newlines that forge log lines, ANSI escapes that repaint a terminal,
bidi overrides, lone surrogates that no UTF-8 encoder (so no manifest) accepts. Everything
peer-supplied that reaches a log line, an error reply or a manifest goes through
:func:`printable_note` first.
"""

from __future__ import annotations

import re
import unicodedata

NOTE_LIMIT = 200  # characters of peer-supplied text kept
ELLIPSIS = "…"
_READ_FACTOR = 8  # input characters read per kept character: bounded work on huge input
# CSI (ESC [ ... final) and OSC (ESC ] ... BEL or ESC \) sequences, and any other ESC + char
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b.?", re.S)
_UNPRINTABLE = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}  # controls, format, separators
_SPACES = re.compile(r"\s+")


def _printable(char: str) -> str:
    return " " if unicodedata.category(char) in _UNPRINTABLE else char


def printable_note(text: object, limit: int = NOTE_LIMIT) -> str:
    """One printable line of at most ``limit`` characters.

    Escape sequences are removed, other control/format characters (C0, C1, newlines, tabs,
    ``Cf`` such as bidi overrides, surrogates, line/paragraph separators) become spaces, runs
    of whitespace become one space, and text cut short ends with ``…``. Only the first
    ``limit * 8`` characters are read, so a 2 MB reason costs what a short one does.

    Parameters
    ----------
    text : object
        The peer's text; anything else (None, bytes, a number) is shown by ``str``.
    limit : int
        The most characters returned, the ellipsis included (at least 1).

    Returns
    -------
    str
        Safe for a log line, an error reply and a JSON manifest.
    """
    if limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    raw = text if isinstance(text, str) else str(text)
    head = raw[: limit * _READ_FACTOR]
    clean = _SPACES.sub(" ", "".join(map(_printable, _ANSI.sub("", head)))).strip()
    if len(clean) <= limit and len(head) == len(raw):
        return clean
    return clean[: limit - len(ELLIPSIS)].rstrip() + ELLIPSIS


def shown(value: object, limit: int = 40) -> str:
    """A short printable rendering of a peer's field value, for an error message.

    Unlike ``repr`` it never renders all of a huge string, bytes or integer (``repr`` of an
    int over 4300 digits even raises), and names containers by type only.

    Parameters
    ----------
    value : object
        The value as received.
    limit : int
        Characters of a string or bytes value quoted.
    """
    if isinstance(value, str | bytes):
        text = repr(value[:limit]) + (ELLIPSIS if len(value) > limit else "")
    elif isinstance(value, bool | float) or value is None:
        text = repr(value)
    elif isinstance(value, int):
        text = repr(value) if abs(value) < 10**limit else f"<{value.bit_length()}-bit int>"
    else:
        text = f"<{type(value).__name__}>"
    return printable_note(text, limit + 20)


def parse_decimal(value: object, bound: int) -> int | None:
    """``value`` as an integer in ``[0, bound)`` if it is its canonical ASCII decimal text.

    Only ``0`` or ``[1-9][0-9]*`` qualifies: ``str.isdigit`` also accepts Arabic-Indic,
    full-width and superscript digits, which ``int`` reads as another number (``'٤٢'`` is
    42) or refuses with a ValueError (``'4²'``), and ``int`` also accepts signs, spaces,
    underscores and leading zeros, so one id would have many spellings. The length is
    checked first, so a huge string costs nothing.

    Parameters
    ----------
    value : object
        A field as received (a run id is sent as text: it may exceed int64).
    bound : int
        The first value too large.

    Returns
    -------
    int or None
        The number, or None when ``value`` is anything else.
    """
    if not isinstance(value, str) or not 0 < len(value) <= len(str(bound)):
        return None
    if not (value.isascii() and value.isdigit()) or (value[0] == "0" and value != "0"):
        return None
    number = int(value)
    return number if number < bound else None
