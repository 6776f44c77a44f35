"""Alerts: a failed or crashed flow run always logs one clear ALERT line, and PM25_ALERT_WEBHOOK, when set, gets one
JSON body. A run of the project's deployments on a server with the project's alert automation (`pm25 automations
apply`) is posted by the server, which also sees runs that die with their worker; every other run is posted by this
hook. A webhook that cannot be reached is logged, never raised: the run's own failure matters more."""

from __future__ import annotations

import json
import logging
import urllib.request
from datetime import UTC, datetime
from typing import Any

from tasks.core.settings import Settings

WEBHOOK_TIMEOUT_SECONDS = 10
PROJECT_TAG = "pm25"  # every deployment of deployments/prefect.yaml carries it, and so do their flow runs
ALERT_AUTOMATION = "pm25-alert"
# The body of alert_payload, as a Prefect automation's CallWebhook renders it from the state-change event (Jinja).
ALERT_PAYLOAD_TEMPLATE = """{
  "event": {{ ("pm25.flow-run." ~ (event.resource["prefect.state-name"] | lower)) | tojson }},
  "flow": {{ flow.name | tojson }},
  "flow_run": {{ event.resource["prefect.resource.name"] | tojson }},
  "flow_run_id": {{ (flow_run.id | string) | tojson }},
  "state": {{ event.resource["prefect.state-name"] | tojson }},
  "message": {{ (event.resource["prefect.state-message"] or "") | tojson }},
  "url": {{ flow_run | ui_url | tojson }},
  "at": {{ event.occurred.isoformat(timespec="seconds") | tojson }}
}"""

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


def server_posts_alerts() -> bool:
    """Whether the Prefect server this process reports to has the project's alert automation, enabled."""
    from prefect.client.orchestration import get_client

    try:
        with get_client(sync_client=True) as client:
            return any(automation.enabled for automation in client.read_automations_by_name(ALERT_AUTOMATION))
    except Exception as error:  # noqa: BLE001  an unreadable server must not cost the alert: post it here
        log.warning("could not ask the Prefect server for its alert automation (%s); posting the alert from the run", error)
        return False


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
    if PROJECT_TAG in (flow_run.tags or []) and server_posts_alerts():
        logger.info("the Prefect server's %r automation posts this alert to PM25_ALERT_WEBHOOK", ALERT_AUTOMATION)
        return
    try:
        status = post_json(webhook, payload)
        logger.info("alert posted to the PM25_ALERT_WEBHOOK address (HTTP %d)", status)
    except OSError as error:  # URLError, HTTPError and timeouts are all OSErrors
        logger.error("alert could not be posted to the PM25_ALERT_WEBHOOK address: %s", error)
