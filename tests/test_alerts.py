"""Alerts: a failed flow run logs an ALERT line and POSTs to PM25_ALERT_WEBHOOK (a receiver on loopback)."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from flows.train import train_pm25
from tasks.core.errors import SourceError

pytestmark = pytest.mark.usefixtures("prefect_server")


@pytest.fixture()
def receiver():
    """A webhook receiver on 127.0.0.1 that keeps every JSON body POSTed to it."""
    received = []

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
    yield f"http://127.0.0.1:{server.server_port}/hook", received
    server.shutdown()
    server.server_close()


def test_failed_run_posts_an_alert_to_the_webhook(receiver, tmp_path, monkeypatch, caplog):
    url, received = receiver
    monkeypatch.setenv("PM25_ALERT_WEBHOOK", url)
    with pytest.raises(SourceError):
        train_pm25(source=str(tmp_path / "missing.csv"), home=str(tmp_path / "home"), download_retries=0)
    assert len(received) == 1
    alert = received[0]
    assert alert["flow"] == "train-pm25" and alert["state"] == "Failed" and alert["event"] == "pm25.flow-run.failed"
    assert "missing.csv: no such file" in alert["message"] and alert["flow_run"].startswith("train missing.csv")
    assert "ALERT: flow run 'train missing.csv" in caplog.text


def test_unreachable_webhook_is_logged_and_does_not_mask_the_failure(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("PM25_ALERT_WEBHOOK", "http://127.0.0.1:9/unreachable")
    with pytest.raises(SourceError):
        train_pm25(source=str(tmp_path / "missing.csv"), home=str(tmp_path / "home"), download_retries=0)
    assert "ALERT: flow run" in caplog.text and "alert could not be posted" in caplog.text
