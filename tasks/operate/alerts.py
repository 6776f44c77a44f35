"""Alerts: a failed or crashed flow run always logs one clear ALERT line, and POSTs JSON to PM25_ALERT_WEBHOOK
when that is set. A webhook that cannot be reached is logged, never raised: the run's own failure matters more."""

from __future__ import annotations

import json
import logging
import urllib.request
from datetime import UTC, datetime
from typing import Any

from tasks.core.settings import Settings

WEBHOOK_TIMEOUT_SECONDS = 10

log = logging.getLogger(__name__)


def alert_payload(flow_name: str, flow_run_name: str, flow_run_id: str, state_name: str, message: str | None,
                  run_url: str | None) -> dict[str, Any]:
    return {
        "event": f"pm25.flow-run.{state_name.lower()}",
        "flow": flow_name,
        "flow_run": flow_run_name,
        "flow_run_id": flow_run_id,
        "state": state_name,
        "message": message or "",
        "url": run_url,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def post_json(url: str, payload: dict[str, Any], timeout: float = WEBHOOK_TIMEOUT_SECONDS) -> int:
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST",
                                     headers={"Content-Type": "application/json", "User-Agent": "pm25-pipeline"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.status


def send_alert(flow: Any, flow_run: Any, state: Any) -> None:
    """Prefect `on_failure` / `on_crashed` hook."""
    from prefect.logging.loggers import flow_run_logger
    from prefect.utilities.urls import url_for

    logger = flow_run_logger(flow_run, flow)
    payload = alert_payload(flow.name, flow_run.name, str(flow_run.id), state.name, state.message,
                            url_for("flow-run", obj_id=flow_run.id))
    logger.error("ALERT: flow run %r of %s ended %s: %s", flow_run.name, flow.name, state.name, payload["message"])
    webhook = Settings().alert_webhook
    if not webhook:
        return
    try:
        status = post_json(webhook, payload)
        logger.info("alert posted to the PM25_ALERT_WEBHOOK address (HTTP %d)", status)
    except OSError as error:  # URLError, HTTPError and timeouts are all OSErrors
        logger.error("alert could not be posted to the PM25_ALERT_WEBHOOK address: %s", error)
