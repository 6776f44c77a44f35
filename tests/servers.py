"""Helpers for tests that start real servers: free loopback ports, a webhook receiver, fresh PostgreSQL databases, and
skipping locally (failing in CI) when a system component is missing."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def webhook_receiver() -> Iterator[tuple[str, list[dict]]]:
    """A webhook receiver on 127.0.0.1 that keeps every JSON body POSTed to it: yields its URL and the bodies."""
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/hook", received
    finally:
        server.shutdown()
        server.server_close()


def required_or_skip(what: str) -> None:
    """Locally a missing system component skips; in CI (which installs it) it fails."""
    if os.environ.get("CI"):
        pytest.fail(f"{what} is required in CI (.ci/run installs it)")
    pytest.skip(f"{what} is not available here")


def _postgres_admin(url: str, statement: str) -> None:
    import asyncpg
    from sqlalchemy.engine import make_url

    async def execute() -> None:
        connection = await asyncpg.connect(make_url(url).set(drivername="postgresql").render_as_string(hide_password=False))
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    asyncio.run(execute())


@contextmanager
def postgres_database() -> Iterator[tuple[str, str]]:
    """A new, empty database on the server of PM25_TEST_POSTGRES_URL: (its asyncpg URL, its password); dropped after."""
    from sqlalchemy.engine import make_url

    admin_url = os.environ.get("PM25_TEST_POSTGRES_URL")
    if not admin_url:
        required_or_skip("PostgreSQL (PM25_TEST_POSTGRES_URL)")
    database = f"pm25_test_{uuid.uuid4().hex[:8]}"
    _postgres_admin(admin_url, f'CREATE DATABASE "{database}"')
    url = make_url(admin_url).set(database=database)
    try:
        yield url.render_as_string(hide_password=False), url.password or ""
    finally:
        _postgres_admin(admin_url, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
