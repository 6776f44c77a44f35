"""Entry point of `pm25`. A command that runs a flow with no Prefect server configured (PREFECT_API_URL unset)
gets Prefect's temporary server, as Prefect itself would start it, but started first: its boot (about 3 s)
then overlaps the pipeline's own imports instead of following them.

Nothing here may import prefect, pandas or the flows before the server is spawned: Prefect reads
PREFECT_API_URL once, when it is first imported.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
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
    second), and SQLite's locking keeps a following command's server safe meanwhile.
    """

    def __init__(self) -> None:
        self.port = _free_loopback_port()
        self.api_url = f"http://127.0.0.1:{self.port}/api"
        environment = {**os.environ, "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1",
                       "PREFECT__SERVER_FINAL": "1"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", "prefect.server.api.server:create_app", "--host",
             "127.0.0.1", "--port", str(self.port), "--log-level", "error", "--lifespan", "on"],
            env=environment,
        )
        os.environ["PREFECT_API_URL"] = self.api_url

    def wait_until_ready(self) -> None:
        wait_for_health(self.process, f"{self.api_url}/health", "Prefect's temporary server", STARTUP_TIMEOUT_SECONDS,
                        poll_seconds=0.05)

    def stop(self) -> None:
        if os.environ.get("PREFECT_API_URL") == self.api_url:
            del os.environ["PREFECT_API_URL"]
        if self.process.poll() is None:
            self.process.terminate()


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


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def needs_temporary_server(argv: Sequence[str]) -> bool:
    return (bool(argv) and argv[0] in FLOW_COMMANDS and not {"-h", "--help"} & set(argv)
            and not os.environ.get("PREFECT_API_URL"))


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    server = TemporaryServer() if needs_temporary_server(argv) else None
    try:
        from flows.cli import main as cli_main  # the heavy imports, while the server boots

        if server is not None:
            server.wait_until_ready()
        return cli_main(argv)
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    sys.exit(main())
