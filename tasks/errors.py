"""Errors that are the data's fault: deterministic, never retried, shown to the user without a traceback."""


class DataError(Exception):
    """The input data break a rule; the message names the file, the column or rule, and example rows."""


class SourceError(Exception):
    """The source cannot be fetched or is not the file it claims to be (bad scheme, 404, checksum mismatch)."""
