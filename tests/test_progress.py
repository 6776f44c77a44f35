"""Progress lines of the long steps: shown on a terminal, nothing when the output is not one."""

import io
import logging

from tasks.core.progress import PROGRESS, show_progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_records_become_bar_lines_on_a_terminal_and_other_records_do_not():
    stream = Terminal()
    handler = show_progress(stream)
    try:
        logger = logging.getLogger("tasks.model.train")
        logger.setLevel(logging.INFO)
        logger.info("epoch %d", 6, extra={PROGRESS: ("training network (epochs, at most)", 6, 24)})
        logger.info("a plain log line")
    finally:
        logging.getLogger("tasks").removeHandler(handler)
    assert stream.getvalue() == f"  training network (epochs, at most): [{'#' * 6}{'.' * 18}] 6/24\n"


def test_nothing_is_shown_when_the_output_is_not_a_terminal():
    stream = io.StringIO()
    assert show_progress(stream) is None
    logging.getLogger("tasks.operate.backtest").info("retrain", extra={PROGRESS: ("backtest retrain origins", 1, 14)})
    assert stream.getvalue() == ""
