"""Prefect's temporary API server as `pm25` runs it, kept for the next command.

A flow command with no Prefect API configured needs a server for its run. Booting one costs about 2.7 s
(mostly importing Prefect's server), most of a run whose stages are all cached. So the server a command
starts stays up until no command has used it for `server_idle_seconds` (PM25_SERVER_IDLE_SECONDS; 0 stops
it as its command ends), and the next command with the same Prefect settings reuses it.

The bookkeeping lives in PREFECT_HOME/pm25-servers/, under a key that digests what decides Prefect's
settings (interpreter, Prefect's install, working folder, PREFECT_* variables, Prefect's settings files):
- `<key>.json`: the server to reuse (pid, port), replaced atomically;
- `<key>.lock`: held exclusively while a command picks or starts a server and while a server retires, so
  no command picks a server that is retiring;
- `<key>-<port>.lease`: every command holds a shared lock on its server's lease while it runs. A server
  retires once its lease has been free for the idle period. Locks die with their process, so a killed
  command never keeps a server up.
A server that was killed instead leaves its record behind: the next command finds that it does not answer
and starts a new one.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import importlib.util
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO

STARTUP_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 30.0
RETIREMENT_CHECK_SECONDS = 0.25
# Prefect reads these from the working folder, besides its profiles and the environment.
PREFECT_SETTINGS_FILES = ("prefect.toml", "pyproject.toml", ".env")


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def healthy(health: str | urllib.request.Request, timeout: float) -> bool:
    """Whether a server's health endpoint answers 200 within `timeout`."""
    try:
        with urllib.request.urlopen(health, timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def answers(api_url: str, timeout: float) -> bool:
    return healthy(f"{api_url}/health", timeout)


def wait_for_health(process: subprocess.Popen, health: str | urllib.request.Request, name: str, timeout: float,
                    poll_seconds: float) -> None:
    """Return once the server's health endpoint answers 200; raise if its process exits or `timeout` passes first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with code {process.returncode} while starting")
        if healthy(health, timeout=2):
            return
        time.sleep(poll_seconds)
    url = health if isinstance(health, str) else health.full_url
    raise RuntimeError(f"{name} did not answer on {url} within {timeout:.0f} s")


def prefect_home() -> Path:
    return Path(os.environ.get("PREFECT_HOME", "~/.prefect")).expanduser()


def settings_key() -> str:
    """Digest of what Prefect's settings, and so a server's database and behaviour, depend on."""
    prefect_spec = importlib.util.find_spec("prefect")
    files = [Path(prefect_spec.origin) if prefect_spec and prefect_spec.origin else Path(sys.executable),
             Path(os.environ.get("PREFECT_PROFILES_PATH", prefect_home() / "profiles.toml")),
             *(Path.cwd() / name for name in PREFECT_SETTINGS_FILES)]
    stats = {}
    for path in files:
        try:
            stat = path.stat()
            stats[str(path)] = [stat.st_mtime_ns, stat.st_size]
        except OSError:
            stats[str(path)] = None
    identity = {"python": sys.executable, "cwd": os.getcwd(), "files": stats,
                "environment": sorted((name, value) for name, value in os.environ.items() if name.startswith("PREFECT_"))}
    return hashlib.sha256(json.dumps(identity).encode()).hexdigest()[:16]


class Registry:
    """The files by which commands find, lease and retire the servers of one settings key."""

    def __init__(self, folder: Path, key: str) -> None:
        self.folder = folder
        self.record_path = folder / f"{key}.json"
        self.lock_path = folder / f"{key}.lock"
        self.key = key

    @classmethod
    def for_this_environment(cls) -> Registry:
        folder = prefect_home() / "pm25-servers"
        folder.mkdir(parents=True, exist_ok=True)
        return cls(folder, settings_key())

    def lease_path(self, port: int) -> Path:
        return self.folder / f"{self.key}-{port}.lease"

    @contextmanager
    def locked(self, blocking: bool = True) -> Iterator[bool]:
        """Hold the key's lock for the block; yields False (and holds nothing) if not blocking and it is taken."""
        with open(self.lock_path, "a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            yield True

    def read(self) -> dict | None:
        try:
            return json.loads(self.record_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def write(self, pid: int, port: int) -> None:
        with tempfile.NamedTemporaryFile("w", dir=self.folder, prefix=".record-", delete=False) as temporary:
            json.dump({"pid": pid, "port": port}, temporary)
        os.replace(temporary.name, self.record_path)

    def take_lease(self, port: int) -> IO:
        """A shared lock on the server's lease, held until the returned file is closed."""
        lease = open(self.lease_path(port), "a")
        fcntl.flock(lease, fcntl.LOCK_SH)
        return lease

    def lease_is_free(self, port: int) -> bool:
        with open(self.lease_path(port), "a") as lease:
            try:
                fcntl.flock(lease, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            return True

    def retire(self, port: int, pid: int) -> bool:
        """Withdraw the server on `port` if no command holds its lease: no command can pick it afterwards."""
        with self.locked(blocking=False) as held:
            if not held or not self.lease_is_free(port):
                return False
            if (self.read() or {}).get("pid") == pid:
                self.record_path.unlink(missing_ok=True)
            self.lease_path(port).unlink(missing_ok=True)
            return True

    def remove_unheld_leases(self) -> None:
        """Delete the leases no command holds (those of servers that were killed, rather than retired, stay
        behind otherwise). Call with the key's lock held, so no command takes one meanwhile."""
        for lease in self.folder.glob(f"{self.key}-*.lease"):
            if self.lease_is_free(int(lease.stem.rsplit("-", 1)[1])):
                lease.unlink(missing_ok=True)


class TemporaryServer:
    """The Prefect API server (SQLite under PREFECT_HOME, no UI) that one `pm25` command runs its flows on:
    reused if a live one with the same settings is registered, started otherwise. The command holds its
    lease until `release`."""

    def __init__(self, idle_seconds: float) -> None:
        self.idle_seconds = idle_seconds
        self.registry = Registry.for_this_environment()
        self.process: subprocess.Popen | None = None
        self.output: IO | None = None
        with self.registry.locked():
            record = self.registry.read()
            if record and answers(f"http://127.0.0.1:{record['port']}/api", timeout=1.0):
                self.port = record["port"]
                self.lease = self.registry.take_lease(self.port)
            else:
                self.registry.remove_unheld_leases()
                self.port = free_loopback_port()
                self.lease = self.registry.take_lease(self.port)
                self.process = self.spawn()
                self.registry.write(self.process.pid, self.port)
        self.api_url = f"http://127.0.0.1:{self.port}/api"

    def describe(self) -> str:
        if self.process is None:
            return f"reusing Prefect's temporary server at {self.api_url}, started by an earlier command"
        lifetime = (f"it stops {self.idle_seconds:g} s after the last command that uses it" if self.idle_seconds
                    else "it stops when this command ends")
        return f"started Prefect's temporary server at {self.api_url}; {lifetime} (PM25_SERVER_IDLE_SECONDS)"

    def spawn(self) -> subprocess.Popen:
        """Prefect's own temporary-server environment, in a session of its own, so that a Ctrl-C meant for the
        command does not reach a server that other commands may use. It does not share the command's output
        streams either: a reader of `pm25 run`'s output (a pipe, a test) sees the end when the command ends;
        what the server writes is shown if it fails to start."""
        environment = {**os.environ, "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1",
                       "PREFECT__SERVER_FINAL": "1"}
        self.output = tempfile.TemporaryFile()
        return subprocess.Popen(
            [sys.executable, "-m", "pm25.temporary_server", "--port", str(self.port), "--idle-seconds",
             str(self.idle_seconds), "--registry", str(self.registry.folder), "--key", self.registry.key],
            env=environment, stdin=subprocess.DEVNULL, stdout=self.output, stderr=subprocess.STDOUT, start_new_session=True,
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
        if self.process is None:
            return  # it answered when it was picked
        try:
            wait_for_health(self.process, f"{self.api_url}/health", "Prefect's temporary server",
                            STARTUP_TIMEOUT_SECONDS, poll_seconds=0.05)
        except RuntimeError as error:
            self.output.seek(0)
            raise RuntimeError(f"{error}; it wrote:\n{self.output.read().decode(errors='replace')[-4000:]}") from None

    def release(self, stop: bool = False) -> None:
        """End this command's use of the server; `stop` also stops a server this command started (one its
        settings did not want), and waits until it has: a server stopped while it was still starting would
        otherwise go on migrating the database that the next server starts on. Otherwise the server retires by
        itself once it has been idle long enough."""
        if os.environ.get("PREFECT_API_URL") == self.api_url:
            del os.environ["PREFECT_API_URL"]
        self.lease.close()
        if self.process is not None:
            if stop and self.process.poll() is None:
                self.process.terminate()
                try:
                    self.process.wait(STOP_TIMEOUT_SECONDS)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
            self.output.close()


async def serve_until_idle(server, port: int, idle_seconds: float, registry: Registry) -> None:
    """Run the uvicorn `server` until its lease has been free for `idle_seconds` and it has withdrawn itself
    from the registry."""
    import asyncio

    async def retire_when_idle() -> None:
        free_since = None
        while not server.should_exit:
            await asyncio.sleep(RETIREMENT_CHECK_SECONDS)
            if not registry.lease_is_free(port):
                free_since = None
                continue
            free_since = free_since or time.monotonic()
            if time.monotonic() - free_since >= idle_seconds and registry.retire(port, os.getpid()):
                server.should_exit = True

    watcher = asyncio.create_task(retire_when_idle())
    try:
        await server.serve()
    finally:
        watcher.cancel()


def main(argv: Sequence[str] | None = None) -> None:
    """The server process: Prefect's API app, as Prefect's own temporary server runs it (uvicorn, its event
    loop, log level error), plus retirement when idle."""
    import asyncio

    import uvicorn

    parser = argparse.ArgumentParser(description="Prefect's temporary API server for pm25 commands.")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--idle-seconds", type=float, required=True)
    parser.add_argument("--registry", type=Path, required=True)
    parser.add_argument("--key", required=True)
    arguments = parser.parse_args(argv)
    config = uvicorn.Config("prefect.server.api.server:create_app", factory=True, host="127.0.0.1",
                            port=arguments.port, log_level="error", lifespan="on")
    server = uvicorn.Server(config)
    with asyncio.Runner(loop_factory=config.get_loop_factory()) as runner:
        runner.run(serve_until_idle(server, arguments.port, arguments.idle_seconds,
                                    Registry(arguments.registry, arguments.key)))


if __name__ == "__main__":
    main()
