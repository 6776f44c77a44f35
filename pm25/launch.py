"""Entry point of `pm25`. A command that runs a flow with no Prefect server configured runs it on Prefect's
temporary server (see pm25/temporary_server.py): the one an earlier command left running with the same
settings, or a new one, started first, so that its boot (about 2.7 s) overlaps the pipeline's own imports.

The server is picked or spawned before anything heavy is imported. Prefect's settings (environment, profile,
prefect.toml, pyproject.toml, .env) then decide: if they name an API, that server is used and a spawned one
is stopped; otherwise Prefect is pointed at the temporary one, and its flow runs send no heartbeats (see
`without_heartbeats`).
"""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Sequence

from pm25.temporary_server import TemporaryServer

FLOW_COMMANDS = frozenset({"run", "validate", "forecast", "backtest"})


def without_heartbeats():
    """Prefect's settings for flow runs on a temporary server: no flow-run heartbeats.

    A heartbeat lets a server's proactive triggers mark a run as crashed when its process dies unseen; a
    temporary server runs no such service (Prefect starts only the reactive ones there), so no one would read
    them, and stopping the heartbeat thread holds up the end of every flow run by up to a second (it sleeps
    in one-second steps).
    """
    from prefect.settings import temporary_settings

    return temporary_settings(updates={"flows.heartbeat_frequency": None})


def send_queued_logs_and_events(timeout: float = 10.0) -> None:
    """Send the logs and events that Prefect still holds to the server, before the command releases it.

    Prefect sends them from background workers and, at interpreter exit, hands the rest to the server; one
    that has retired by then (released with no idle time) leaves its client retrying for over a minute.
    """
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=timeout)
    EventsWorker.drain_all(timeout=timeout)


def may_need_temporary_server(argv: Sequence[str]) -> bool:
    """A flow command, with no API in the environment (Prefect's other settings are read after the spawn)."""
    return (bool(argv) and argv[0] in FLOW_COMMANDS and not {"-h", "--help"} & set(argv)
            and not os.environ.get("PREFECT_API_URL"))


def temporary_server_for(argv: Sequence[str]) -> TemporaryServer | None:
    """The temporary server a flow command runs on, if it may need one and its settings are valid (the
    command itself reports invalid ones)."""
    if not may_need_temporary_server(argv):
        return None
    from pydantic import ValidationError

    from tasks.core.settings import Settings

    try:
        idle_seconds = Settings().server_idle_seconds
    except ValidationError:
        return None
    return TemporaryServer(idle_seconds)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    server = temporary_server_for(argv)
    try:
        if server is not None:
            if server.adopt():
                print(f"pm25: {server.describe()}", file=sys.stderr)
            else:
                server.release(stop=True)
                server = None
        from pm25.cli import main as cli_main

        if server is None:
            return cli_main(argv)
        from flows import forecast, train, validate  # noqa: F401  the flows' heavy imports, while a new server boots

        server.wait_until_ready()
        with without_heartbeats():
            return cli_main(argv)
    finally:
        if server is not None:
            send_queued_logs_and_events()
            server.release()


def console() -> None:
    """`pm25` as installed: run the command, then exit without the garbage collector walking every object
    that the imports created (pandas, Prefect, TensorFlow). By then outputs are written, Prefect's logs
    are sent and the server is released; the walk cost 1.3 s of a training run's exit, 0.35 s of a
    cached run's."""
    code = main()
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    console()
