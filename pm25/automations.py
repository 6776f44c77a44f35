"""`pm25 automations apply`: what a lasting Prefect server needs to watch the project's nights, created idempotently
(running it again replaces each object by name, never adds a second one).

- `pm25-crash-zombie-runs`: a flow run of the project's deployments whose heartbeats stop for ZOMBIE_MISSED_HEARTBEATS
  intervals without a final state is marked Crashed, so a run whose process died with its worker frees its slot
  and is alerted. Its deployments send a heartbeat every HEARTBEAT_SECONDS (deployments/prefect.yaml).
- `pm25-alert`, when PM25_ALERT_WEBHOOK is set: Failed, Crashed and TimedOut runs of the project's deployments are
  POSTed to it through the webhook block `pm25-alert-webhook`, with the body of tasks.operate.alerts.alert_payload.
  Without the variable both are deleted, and runs alert from their own hook (which posts nothing without a webhook).
- The tag concurrency limit of TRAINING_TAG: at most `training_concurrency` training tasks run at once against
  this server, whichever flow runs them.
"""

from __future__ import annotations

from datetime import timedelta

from tasks.core.settings import Settings
from tasks.model.train import TRAINING_TAG
from tasks.operate.alerts import ALERT_AUTOMATION, ALERT_PAYLOAD_TEMPLATE, PROJECT_TAG

ZOMBIE_AUTOMATION = "pm25-crash-zombie-runs"
WEBHOOK_BLOCK = "pm25-alert-webhook"
HEARTBEAT_SECONDS = 30  # the deployments' PREFECT_FLOWS_HEARTBEAT_FREQUENCY (Prefect's minimum)
ZOMBIE_MISSED_HEARTBEATS = 3
ALERTED_STATES = ("Failed", "Crashed", "TimedOut")
FINAL_STATES = ("Completed", "Failed", "Crashed", "Cancelled", "TimedOut")


def project_runs():
    """Events about the flow runs that carry the project's tag (those of its deployments)."""
    from prefect.events.schemas.automations import ResourceSpecification

    return {"match": ResourceSpecification({"prefect.resource.id": "prefect.flow-run.*"}),
            "match_related": ResourceSpecification({"prefect.resource.role": "tag",
                                                    "prefect.resource.id": f"prefect.tag.{PROJECT_TAG}"})}


def zombie_automation():
    """Prefect's documented zombie rule (a heartbeat, then neither a heartbeat nor a final state within the window),
    for the project's runs."""
    from prefect.automations import AutomationCore, ChangeFlowRunState, EventTrigger, Posture
    from prefect.client.schemas.objects import StateType

    window = timedelta(seconds=HEARTBEAT_SECONDS * ZOMBIE_MISSED_HEARTBEATS)
    return AutomationCore(
        name=ZOMBIE_AUTOMATION,
        description=f"A pm25 flow run that sent no heartbeat for {window.seconds} s is marked Crashed: its process "
                    "died, and no worker is left to say so.",
        trigger=EventTrigger(after={"prefect.flow-run.heartbeat"},
                             expect={"prefect.flow-run.heartbeat", *(f"prefect.flow-run.{state}" for state in FINAL_STATES)},
                             for_each={"prefect.resource.id"}, posture=Posture.Proactive, threshold=1, within=window,
                             **project_runs()),
        actions=[ChangeFlowRunState(state=StateType.CRASHED,
                                    message=f"no heartbeat for {window.seconds} s: the flow run's process is gone "
                                            f"(marked by the {ZOMBIE_AUTOMATION!r} automation)")],
    )


def alert_automation(webhook_block_id):
    from prefect.automations import AutomationCore, CallWebhook, EventTrigger, Posture

    return AutomationCore(
        name=ALERT_AUTOMATION,
        description="POSTs the pm25 alert body to PM25_ALERT_WEBHOOK when a pm25 flow run ends Failed, Crashed or "
                    "TimedOut.",
        trigger=EventTrigger(expect={f"prefect.flow-run.{state}" for state in ALERTED_STATES},
                             for_each={"prefect.resource.id"}, posture=Posture.Reactive, threshold=1,
                             within=timedelta(0), **project_runs()),
        actions=[CallWebhook(block_document_id=webhook_block_id, payload=ALERT_PAYLOAD_TEMPLATE)],
    )


def save_webhook_block(url: str):
    """The webhook block the alert automation posts through (private addresses allowed: the operator names it)."""
    from prefect.blocks.webhook import Webhook

    block = Webhook(method="POST", url=url, allow_private_urls=True,
                    headers={"Content-Type": "application/json", "User-Agent": "pm25-pipeline"})
    return block.save(WEBHOOK_BLOCK, overwrite=True)


def put_automation(client, automation) -> str:
    """Create `automation`, or replace the one of its name (and delete any further ones of that name)."""
    existing = client.read_automations_by_name(automation.name)
    for duplicate in existing[1:]:
        client.delete_automation(duplicate.id)
    if existing:
        client.update_automation(existing[0].id, automation)
        return f"updated automation {automation.name!r}"
    client.create_automation(automation)
    return f"created automation {automation.name!r}"


def delete_automation(client, name: str) -> list[str]:
    """Delete every automation called `name`; a line for each."""
    done = []
    for automation in client.read_automations_by_name(name):
        client.delete_automation(automation.id)
        done.append(f"deleted automation {name!r}")
    return done


def put_training_limit(client, limit: int) -> str:
    client.create_concurrency_limit(tag=TRAINING_TAG, concurrency_limit=limit)  # replaces the tag's limit
    return f"set the {TRAINING_TAG!r} tag's concurrency limit to {limit}"


def apply_automations(settings: Settings) -> list[str]:
    """Create or replace the automations, the webhook block and the training limit on the server that Prefect's
    settings name; return what was done, a line each."""
    from prefect.client.orchestration import get_client

    done = []
    with get_client(sync_client=True) as client:
        done.append(put_automation(client, zombie_automation()))
        if settings.alert_webhook:
            block_id = save_webhook_block(settings.alert_webhook)
            done.append(f"saved webhook block {WEBHOOK_BLOCK!r} (PM25_ALERT_WEBHOOK)")
            done.append(put_automation(client, alert_automation(block_id)))
        else:
            done += delete_automation(client, ALERT_AUTOMATION)
        done.append(put_training_limit(client, settings.training_concurrency))
    return done
