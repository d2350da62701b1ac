"""The one error a wire record raises when it cannot be read."""


class RecordError(ValueError):
    """A record from the other side is missing, of another version, or malformed.

    Readers raise it before acting on anything, so a bad record never changes state; the
    message names the record and the field.
    """
