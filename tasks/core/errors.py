"""Errors the pipeline expects, shown to the user as one message without a traceback.

DataError, SourceError and RegistryError are deterministic and never retried; SourceUnavailable is retried.
TrainingTimeout ends a training that ran past its bound.
"""

import logging


class DataError(Exception):
    """The input data break a rule; the message names the file, the column or rule, and example rows."""


class SourceError(Exception):
    """The source cannot be fetched or is not the file it claims to be (bad scheme, 404, checksum mismatch)."""


class SourceUnavailable(Exception):
    """The source did not answer (5xx, reset, timeout): worth retrying; reported without a traceback when retries run out."""


class RegistryError(Exception):
    """The model registry cannot serve the request (no champion yet, unknown version)."""


class TrainingTimeout(Exception):
    """A training ran past PM25_TRAINING_TIMEOUT_SECONDS; nothing of it was saved."""


EXPECTED_ERRORS = (DataError, SourceError, SourceUnavailable, RegistryError, TrainingTimeout)


class HideExpectedTracebacks(logging.Filter):
    """Drop the traceback from log records about an expected error: its message already says what is wrong."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], EXPECTED_ERRORS):
            record.exc_info, record.exc_text = None, None
        return True


def hide_expected_tracebacks() -> None:
    """Install the filter on every handler configured so far (Prefect's console and API handlers included)."""
    loggers = [logging.getLogger(), *(logger for logger in logging.Logger.manager.loggerDict.values()
                                      if isinstance(logger, logging.Logger))]
    for handler in {handler for logger in loggers for handler in logger.handlers}:
        if not any(isinstance(existing, HideExpectedTracebacks) for existing in handler.filters):
            handler.addFilter(HideExpectedTracebacks())
