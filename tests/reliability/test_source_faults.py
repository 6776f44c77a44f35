"""HTTP faults of the source, against real HTTP servers on loopback: transient ones are retried with
exponential backoff and the run completes; a 404 and a checksum mismatch fail clearly, without retrying."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from flows.validate import validate_pm25
from pm25.cli import main
from tasks.core.errors import SourceError
from tasks.core.settings import UCI_SOURCE_NAME

pytestmark = pytest.mark.usefixtures("prefect_server")

TIMEOUT_SECONDS = 0.5
BASE_DELAY_SECONDS = 0.2


class ScriptedSource:
    """Answers the n-th request with the n-th behaviour of `script` (the last one repeats); records request times."""

    def __init__(self, body: bytes, script: list[str]):
        self.body, self.script, self.requests = body, script, []
        source = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                source.requests.append(time.monotonic())
                behaviour = source.script[min(len(source.requests), len(source.script)) - 1]
                if behaviour == "reset":  # RST instead of an answer
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.connection.close()
                    self.close_connection = True
                    return
                if behaviour == "stall":  # answer long after the client's timeout
                    time.sleep(TIMEOUT_SECONDS * 4)
                status = {"ok": 200, "stall": 200, "503": 503, "404": 404}[behaviour]
                payload = source.body if status == 200 else b"unavailable"
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    pass  # the client gave up (stall)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/data/{UCI_SOURCE_NAME}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def serve(real_csv) -> Iterator:
    started = []

    def start(script: list[str], body: bytes | None = None) -> ScriptedSource:
        started.append(ScriptedSource(body if body is not None else real_csv.read_bytes(), script))
        return started[-1]

    yield start
    for source in started:
        source.close()


def fetch(source: ScriptedSource, home, retries: int = 3) -> dict:
    return validate_pm25(source=source.url, home=str(home), download_retries=retries,
                         retry_delay_seconds=BASE_DELAY_SECONDS, download_timeout_seconds=TIMEOUT_SECONDS)


@pytest.mark.parametrize("fault", ["503", "reset", "stall"])
def test_transient_faults_are_retried_and_the_run_completes(fault, serve, tmp_path):
    source = serve([fault, fault, "ok"])
    assert fetch(source, tmp_path)["passed"]
    assert len(source.requests) == 3


def test_retries_back_off_exponentially(serve, tmp_path):
    source = serve(["503", "503", "503", "ok"])
    assert fetch(source, tmp_path)["passed"]
    gaps = [later - earlier for earlier, later in zip(source.requests, source.requests[1:])]
    # Delays 0.2, 0.4, 0.8 s, each jittered within Prefect's clamp: the third is always longer than the first.
    assert gaps[0] >= BASE_DELAY_SECONDS * 0.5 and gaps[2] > gaps[0] * 1.5, gaps


def test_a_fault_that_outlasts_the_retries_fails_clearly(serve, tmp_path, capfd):
    source = serve(["503"])
    assert main(["validate", "--source", source.url, "--home", str(tmp_path), "--download-retries", "2",
                 "--retry-delay-seconds", str(BASE_DELAY_SECONDS)]) == 1
    assert len(source.requests) == 3
    err = capfd.readouterr().err
    assert f"pm25 validate: {source.url}: HTTP 503 Service Unavailable" in err and "Traceback" not in err


def test_not_found_fails_at_once_with_a_clear_message(serve, tmp_path):
    source = serve(["404"])
    with pytest.raises(SourceError, match=rf"{UCI_SOURCE_NAME}: HTTP 404"):
        fetch(source, tmp_path)
    assert len(source.requests) == 1  # a permanent answer: retrying cannot help


def test_checksum_mismatch_of_the_known_file_is_refused(serve, real_csv, tmp_path):
    tampered = real_csv.read_bytes().replace(b",NW,", b",NE,", 1)
    source = serve(["ok"], body=tampered)
    with pytest.raises(SourceError, match="does not match the published UCI file"):
        fetch(source, tmp_path)
    assert len(source.requests) == 1
    assert not list((tmp_path / "data").rglob("*.csv"))  # nothing of it is kept
