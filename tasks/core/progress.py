"""Progress of the long steps (epochs of a training, stations of a network run, retrain origins of a backtest),
for a person at a terminal.

A stage logs its progress as an ordinary log record with a `progress` attribute, (what, done, total); the command
line shows those records as progress lines when its output is a terminal and shows nothing more otherwise (cron,
CI, pipes). The log lines themselves are unchanged and reach Prefect as always.
"""

from __future__ import annotations

import logging
from typing import TextIO

PROGRESS = "progress"
BAR_WIDTH = 24


class TerminalProgress(logging.Handler):
    """Writes one line with a bar for each record that carries progress; ignores every other record."""

    def __init__(self, stream: TextIO):
        super().__init__(logging.INFO)
        self.stream = stream

    def emit(self, record: logging.LogRecord) -> None:
        progress = getattr(record, PROGRESS, None)
        if progress is None:
            return
        what, done, total = progress
        filled = round(BAR_WIDTH * done / total) if total else BAR_WIDTH
        self.stream.write(f"  {what}: [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {done}/{total}\n")
        self.stream.flush()


def show_progress(stream: TextIO) -> TerminalProgress | None:
    """Show the pipeline's progress on `stream` if it is a terminal; returns the handler to remove, or None."""
    if not stream.isatty():
        return None
    handler = TerminalProgress(stream)
    logging.getLogger("tasks").addHandler(handler)
    return handler
