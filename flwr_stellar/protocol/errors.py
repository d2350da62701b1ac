"""The one error a wire record raises when it cannot be read."""

from typing import Any

from flwr_stellar.protocol.text import shown


class RecordError(ValueError):
    """A record from the other side is missing, of another version, or malformed.

    Readers raise it before acting on anything, so a bad record never changes state; the
    message names the record and the field.
    """


def require_version(record: Any, expected: int, what: str) -> None:
    """RecordError unless ``record["version"]`` is exactly the int ``expected`` (``True`` is
    not 1), naming ``what`` and the value as sent (bounded, printable)."""
    version = record.get("version")
    if type(version) is not int or version != expected:
        raise RecordError(f"unknown {what} version {shown(version)}")
