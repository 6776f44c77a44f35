"""Alerts: a failed flow run logs an ALERT line and POSTs to PM25_ALERT_WEBHOOK (a receiver on loopback)."""

import re
from pathlib import Path

import pytest
from servers import webhook_receiver

from flows.train import train_pm25
from tasks.core.errors import DataError, SourceError

pytestmark = pytest.mark.usefixtures("prefect_server")


@pytest.fixture()
def receiver():
    with webhook_receiver() as receiving:
        yield receiving


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


def test_a_refused_input_is_alerted_with_its_data_docs_page(receiver, real_csv, tmp_path, monkeypatch):
    """A data-quality failure (pressure in pascals) reaches the webhook with the page that shows it."""
    url, received = receiver
    monkeypatch.setenv("PM25_ALERT_WEBHOOK", url)
    header, *rows = real_csv.read_text(encoding="utf-8").splitlines()
    pressure = header.split(",").index("PRES")
    in_pascals = [",".join(str(float(cell) * 100) if index == pressure else cell
                           for index, cell in enumerate(row.split(","))) for row in rows]
    refused = tmp_path / "pascals.csv"
    refused.write_text("\n".join([header, *in_pascals]) + "\n", encoding="utf-8")
    with pytest.raises(DataError):
        train_pm25(source=str(refused), home=str(tmp_path / "home"))
    (alert,) = received
    assert alert["state"] == "Failed" and "pres" in alert["message"].lower()
    docs = re.search(r"Data Docs: (\S+)", alert["message"]).group(1)
    assert Path(docs).is_file() and docs.endswith(".html")
