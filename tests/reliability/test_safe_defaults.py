"""Safe defaults: loopback unless told otherwise, an auth string beyond it, no pickles, safe Keras loading,
only http(s) or local sources, and no secrets in logs."""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from servers import free_loopback_port

from flows.train import train_pm25
from pm25.cli import main
from pm25.serve import LOOPBACK, LocalPrefect
from tasks.core.errors import SourceError
from tasks.core.settings import PROJECT_ROOT
from tasks.model.train import load_model

AUTH = "operator:not-a-real-password-41"


def test_serve_listens_on_loopback_by_default():
    assert LocalPrefect().host == LOOPBACK == "127.0.0.1"


def test_serving_beyond_loopback_without_an_auth_string_is_refused():
    env = {key: value for key, value in os.environ.items() if key != "PREFECT_SERVER_API_AUTH_STRING"}
    port = free_loopback_port()
    done = subprocess.run([sys.executable, "-m", "pm25.cli", "serve", "--host", "0.0.0.0", "--port", str(port)],
                          cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "PREFECT_SERVER_API_AUTH_STRING" in done.stderr
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0  # nothing was started


def test_beyond_loopback_requests_without_the_auth_string_are_refused(tmp_path):
    server = LocalPrefect(port=free_loopback_port(), host="0.0.0.0", log_dir=tmp_path,
                          environment={**os.environ, "PREFECT_HOME": str(tmp_path), "PREFECT_SERVER_API_AUTH_STRING": AUTH})
    try:
        server.start_server()
        request = urllib.request.Request(f"{server.api_url}/flows/filter", data=b"{}", method="POST",
                                         headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 401
        request.add_header("Authorization", "Basic " + base64.b64encode(AUTH.encode()).decode())
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200 and json.load(response) == []
        server.ensure_work_pool()  # the CLI calls made for the operator carry the auth string too
    finally:
        server.stop()
    assert AUTH.split(":")[1] not in (tmp_path / "server.log").read_text()


def test_no_pickle_on_any_load_path():
    code = "\n".join(path.read_text() for folder in ("tasks", "flows", "pm25") for path in (PROJECT_ROOT / folder).glob("*.py"))
    assert not re.search(r"\bimport (c?pickle|joblib|dill|cloudpickle)\b|read_pickle|allow_pickle=True|safe_mode=False", code)


def test_keras_models_load_in_safe_mode(tmp_path):
    import keras

    inputs = keras.Input(shape=(3,))
    unsafe = keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2)(inputs))
    path = tmp_path / "lambda.keras"
    unsafe.save(str(path))
    with pytest.raises(ValueError, match="safe_mode"):
        load_model(path)


@pytest.mark.parametrize("source", ["ftp://example.org/data.csv", "file:///etc/passwd", "s3://bucket/data.csv"])
def test_sources_other_than_http_https_or_local_paths_are_refused(source, capsys):
    assert main(["validate", "--source", source]) == 2
    assert "http(s) URL or a local path" in capsys.readouterr().err


@pytest.mark.usefixtures("prefect_server")
def test_the_webhook_address_never_reaches_logs(tmp_path, monkeypatch, caplog):
    secret = "token=sk-live-0123456789"
    monkeypatch.setenv("PM25_ALERT_WEBHOOK", f"http://127.0.0.1:9/hook?{secret}")
    with pytest.raises(SourceError):
        train_pm25(source=str(tmp_path / "missing.csv"), home=str(tmp_path / "home"), download_retries=0)
    assert "alert could not be posted" in caplog.text and secret not in caplog.text
    assert not Path(tmp_path / "home").exists() or secret not in "".join(
        path.read_text(errors="ignore") for path in Path(tmp_path / "home").rglob("*") if path.is_file())
