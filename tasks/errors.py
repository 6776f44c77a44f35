"""Deterministic errors: never retried, shown to the user as one message without a traceback."""


class DataError(Exception):
    """The input data break a rule; the message names the file, the column or rule, and example rows."""


class SourceError(Exception):
    """The source cannot be fetched or is not the file it claims to be (bad scheme, 404, checksum mismatch)."""


class RegistryError(Exception):
    """The model registry cannot serve the request (no champion yet, unknown version)."""
