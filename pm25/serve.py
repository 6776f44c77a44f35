"""Run the whole operation locally: a Prefect server (on 127.0.0.1 by default), the `pm25-process` work pool, the
deployments of deployments/prefect.yaml and a process worker; Ctrl-C stops them all (`pm25 serve`).

The server uses Prefect's embedded SQLite unless PREFECT_API_DATABASE_CONNECTION_URL names another
database (postgresql+asyncpg://user:password@host:5432/db), which it then migrates and uses.
"""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tasks.core.settings import PROJECT_ROOT

WORK_POOL = "pm25-process"
PREFECT_FILE = PROJECT_ROOT / "deployments" / "prefect.yaml"
LOOPBACK = "127.0.0.1"
DEFAULT_PORT = 4200
STARTUP_TIMEOUT_SECONDS = 120.0
STOP_TIMEOUT_SECONDS = 20.0
WORKER_RESTART_DELAY_SECONDS = 5.0  # a worker that cannot start is retried at this pace, not in a tight loop


def healthy(health: urllib.request.Request, timeout: float) -> bool:
    """Whether a server's health endpoint answers 200 within `timeout`."""
    try:
        with urllib.request.urlopen(health, timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def wait_for_health(process: subprocess.Popen, health: urllib.request.Request, name: str, timeout: float,
                    poll_seconds: float) -> None:
    """Return once the server's health endpoint answers 200; raise if its process exits or `timeout` passes first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with code {process.returncode} while starting")
        if healthy(health, timeout=2):
            return
        time.sleep(poll_seconds)
    raise RuntimeError(f"{name} did not answer on {health.full_url} within {timeout:.0f} s")


def stop_process(process: subprocess.Popen) -> None:
    """SIGTERM to the process group of a server or worker started in a session of its own; SIGKILL if it is still up
    after STOP_TIMEOUT_SECONDS."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


class UnsafeBinding(Exception):
    """Asked to listen beyond loopback without PREFECT_SERVER_API_AUTH_STRING."""


@dataclass
class LocalPrefect:
    """A Prefect server, work pool, deployments and worker, started and stopped as one.

    The server listens on 127.0.0.1 unless `host` says otherwise; any other address requires
    PREFECT_SERVER_API_AUTH_STRING ("user:password"), which the worker and CLI calls then send.
    """

    port: int = DEFAULT_PORT
    host: str = LOOPBACK
    environment: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    log_dir: Path | None = None  # where server.log and worker.log go; None: inherit this terminal
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def api_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/api"

    @property
    def ui_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def env(self) -> dict[str, str]:
        # Without PREFECT_UI_API_URL the UI of a server on another port than 4200 calls 4200 and shows nothing.
        env = {**self.environment, "PREFECT_API_URL": self.api_url, "PREFECT_UI_API_URL": self.api_url,
               "PREFECT_SERVER_ANALYTICS_ENABLED": self.environment.get("PREFECT_SERVER_ANALYTICS_ENABLED", "false")}
        if self.environment.get("PREFECT_SERVER_API_AUTH_STRING"):
            env["PREFECT_API_AUTH_STRING"] = self.environment["PREFECT_SERVER_API_AUTH_STRING"]
        return env

    def check_binding(self) -> None:
        if self.host not in (LOOPBACK, "localhost", "::1") and not self.environment.get("PREFECT_SERVER_API_AUTH_STRING"):
            raise UnsafeBinding(
                f"refusing to serve on {self.host}: beyond loopback the API needs PREFECT_SERVER_API_AUTH_STRING "
                "(user:password), or anyone who can reach the port can run flows on this machine"
            )

    def prefect(self, *arguments: str, timeout: float = 300) -> subprocess.CompletedProcess:
        """Run a `prefect` CLI command against this server; raise with its output when it fails."""
        done = subprocess.run([sys.executable, "-m", "prefect", *arguments], cwd=PROJECT_ROOT, env=self.env(),
                              capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"prefect {' '.join(arguments)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        return done

    def _spawn(self, name: str, *arguments: str) -> subprocess.Popen:
        output = open(self.log_dir / f"{name}.log", "ab") if self.log_dir else None  # noqa: SIM115 (kept by Popen)
        process = subprocess.Popen([sys.executable, "-m", "prefect", *arguments], cwd=PROJECT_ROOT, env=self.env(),
                                   stdout=output, stderr=subprocess.STDOUT if output else None, start_new_session=True)
        self.processes[name] = process
        return process

    def start_server(self) -> None:
        self.check_binding()
        server = self._spawn("server", "server", "start", "--host", self.host, "--port", str(self.port), "--analytics-off")
        wait_for_health(server, self.authorized(f"{self.api_url}/health"), "the Prefect server", STARTUP_TIMEOUT_SECONDS,
                        poll_seconds=0.5)

    def authorized(self, url: str) -> urllib.request.Request:
        request = urllib.request.Request(url)
        if self.environment.get("PREFECT_SERVER_API_AUTH_STRING"):
            token = base64.b64encode(self.environment["PREFECT_SERVER_API_AUTH_STRING"].encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        return request

    def ensure_work_pool(self) -> None:
        try:
            self.prefect("work-pool", "inspect", WORK_POOL)
        except RuntimeError:
            self.prefect("work-pool", "create", WORK_POOL, "--type", "process")

    def deploy(self) -> str:
        return self.prefect("--no-prompt", "deploy", "--all", "--prefect-file", str(PREFECT_FILE.relative_to(PROJECT_ROOT))).stdout

    def apply_automations(self) -> str:
        """`pm25 automations apply` against this server (the zombie rule, alerts, the training limit)."""
        done = subprocess.run([sys.executable, "-m", "pm25.cli", "automations", "apply", "--api-url", self.api_url],
                              cwd=PROJECT_ROOT, env=self.env(), capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            raise RuntimeError(f"pm25 automations apply failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def start_worker(self) -> None:
        self._spawn("worker", "worker", "start", "--pool", WORK_POOL, "--type", "process")

    def start(self) -> None:
        self.start_server()
        self.ensure_work_pool()
        self.deploy()
        print(self.apply_automations(), end="", flush=True)
        self.start_worker()

    def stop(self) -> None:
        """Stop the worker first (it cancels nothing: running flows finish in their own processes), then the server."""
        for name in ("worker", "server"):
            process = self.processes.pop(name, None)
            if process is not None:
                stop_process(process)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def serve(port: int, host: str = LOOPBACK) -> int:
    """Start everything, print where to look, and stop it all on Ctrl-C (or SIGTERM)."""
    local = LocalPrefect(port=port, host=host)
    try:
        local.check_binding()
    except UnsafeBinding as error:
        print(f"pm25 serve: {error}", file=sys.stderr)
        return 2
    database = os.environ.get("PREFECT_API_DATABASE_CONNECTION_URL", "embedded SQLite")
    print(f"Starting a Prefect server on {local.ui_url} (database: {database.split('@')[-1]}) ...", flush=True)
    # Handlers, not inherited "ignore" dispositions (a shell's background job ignores SIGINT): children then
    # start with the default SIGINT handling, and SIGINT or SIGTERM here stops everything in order.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        local.start()
        print(f"\nPrefect UI: {local.ui_url}\n"
              "Deployments train-pm25/nightly (02:00 Asia/Shanghai), forecast-pm25/on-demand and backtest-pm25/on-demand, "
              f"worker on pool {WORK_POOL}.\n"
              f"Elsewhere: PREFECT_API_URL={local.api_url} pm25 trigger --max-epochs 1\n"
              "Ctrl-C stops the worker and the server.", flush=True)
        while local.processes["server"].poll() is None:
            if local.processes["worker"].poll() is not None:
                # As a separate server would, this one outlives its worker: a new worker takes the pool's next runs,
                # and the server's zombie rule marks the runs the dead one left Crashed.
                print(f"pm25 serve: the worker exited with code {local.processes['worker'].returncode}; starting a new "
                      f"one in {WORKER_RESTART_DELAY_SECONDS:g} s", file=sys.stderr, flush=True)
                time.sleep(WORKER_RESTART_DELAY_SECONDS)
                local.start_worker()
            time.sleep(1)
        print("pm25 serve: the server exited; stopping", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nStopping the worker and the server ...", flush=True)
        return 0
    finally:
        local.stop()
