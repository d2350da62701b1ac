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
