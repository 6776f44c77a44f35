"""Entry point of `pm25`. A command that runs a flow with no Prefect server configured gets Prefect's
temporary server, as Prefect itself would start it, but started first: its boot (about 2.6 s) then
overlaps the pipeline's own imports instead of following them.

The server is spawned before anything else is imported. Prefect's settings (environment, profile,
prefect.toml, pyproject.toml, .env) then decide: if they name an API, that server is used and the
spawned one is stopped; otherwise Prefect is pointed at the spawned one, and its flow runs send no
heartbeats (see `without_heartbeats`).
"""

from __future__ import annotations

import gc
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence

FLOW_COMMANDS = frozenset({"run", "validate", "forecast"})
STARTUP_TIMEOUT_SECONDS = 60.0


class TemporaryServer:
    """Prefect's API server (SQLite under PREFECT_HOME, no UI) for the life of one command.

    The same uvicorn command and environment as Prefect's own temporary server (SubprocessASGIServer).
    `stop` asks it to shut down and returns without waiting: the server finishes on its own (about a
    second), and SQLite's locking keeps a following command's server safe meanwhile. The server does not
    share the command's output streams, so a reader of `pm25 run`'s output (a pipe, a test) sees it end
    when the command ends, not when the server does; what the server writes is shown if it fails to start.
    """

    def __init__(self) -> None:
        self.port = free_loopback_port()
        self.api_url = f"http://127.0.0.1:{self.port}/api"
        environment = {**os.environ, "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1",
                       "PREFECT__SERVER_FINAL": "1"}
        self.output = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", "prefect.server.api.server:create_app", "--host",
             "127.0.0.1", "--port", str(self.port), "--log-level", "error", "--lifespan", "on"],
            env=environment, stdin=subprocess.DEVNULL, stdout=self.output, stderr=subprocess.STDOUT,
        )

    def adopt(self) -> bool:
        """Point this process's Prefect at this server, unless its settings name an API already or forbid a
        temporary server; say whether it did."""
        from prefect.context import refresh_global_settings_context
        from prefect.settings import get_current_settings

        settings = get_current_settings()
        if settings.api.url or not settings.server.ephemeral.enabled:
            return False
        os.environ["PREFECT_API_URL"] = self.api_url
        refresh_global_settings_context()  # Prefect read its settings at import, before the line above
        return True

    def wait_until_ready(self) -> None:
        try:
            wait_for_health(self.process, f"{self.api_url}/health", "Prefect's temporary server",
                            STARTUP_TIMEOUT_SECONDS, poll_seconds=0.05)
        except RuntimeError as error:
            self.output.seek(0)
            raise RuntimeError(f"{error}; it wrote:\n{self.output.read().decode(errors='replace')[-4000:]}") from None

    def stop(self) -> None:
        if os.environ.get("PREFECT_API_URL") == self.api_url:
            del os.environ["PREFECT_API_URL"]
        if self.process.poll() is None:
            self.process.terminate()
        self.output.close()


def wait_for_health(process: subprocess.Popen, health: str | urllib.request.Request, name: str, timeout: float,
                    poll_seconds: float) -> None:
    """Return once the server's health endpoint answers 200; raise if its process exits or `timeout` passes first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with code {process.returncode} while starting")
        try:
            with urllib.request.urlopen(health, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(poll_seconds)
    url = health if isinstance(health, str) else health.full_url
    raise RuntimeError(f"{name} did not answer on {url} within {timeout:.0f} s")


def without_heartbeats():
    """Prefect's settings for flow runs on a temporary server: no flow-run heartbeats.

    A heartbeat lets a server mark a run as crashed when its process dies unseen; a temporary server lives
    and dies with the process, so no one would read them, and stopping the heartbeat thread holds up the
    end of every flow run by up to a second (it sleeps in one-second steps).
    """
    from prefect.settings import temporary_settings

    return temporary_settings(updates={"flows.heartbeat_frequency": None})


def send_queued_logs_and_events(timeout: float = 10.0) -> None:
    """Send the logs and events that Prefect still holds to the server, before the server stops.

    Prefect sends them from background workers and, at interpreter exit, hands the rest to a server that
    by then is gone: its client retries for over a minute before giving up.
    """
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=timeout)
    EventsWorker.drain_all(timeout=timeout)


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def may_need_temporary_server(argv: Sequence[str]) -> bool:
    """A flow command, with no API in the environment (Prefect's other settings are read after the spawn)."""
    return (bool(argv) and argv[0] in FLOW_COMMANDS and not {"-h", "--help"} & set(argv)
            and not os.environ.get("PREFECT_API_URL"))


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    server = TemporaryServer() if may_need_temporary_server(argv) else None
    try:
        if server is not None and not server.adopt():
            server.stop()
            server = None
        from flows.cli import main as cli_main

        if server is None:
            return cli_main(argv)
        from flows import forecast, train, validate  # noqa: F401  the flows' heavy imports, while the server boots

        server.wait_until_ready()
        with without_heartbeats():
            return cli_main(argv)
    finally:
        if server is not None:
            send_queued_logs_and_events()
            server.stop()


def console() -> None:
    """`pm25` as installed: run the command, then exit without the garbage collector walking every object
    that the imports created (pandas, Prefect, TensorFlow). By then outputs are written, the server is
    stopped and Prefect's logs are sent; the walk cost 1.3 s of a training run's exit, 0.35 s of a
    cached run's."""
    code = main()
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    console()
