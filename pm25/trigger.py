"""`pm25 trigger`: start a deployment's flow run on a Prefect server and follow its states to the end."""

from __future__ import annotations

import sys
import time
from datetime import datetime
from typing import Any

POLL_SECONDS = 2.0


def follow_deployment_run(deployment: str, parameters: dict[str, Any], api_url: str) -> int:
    """Exit status 0 when the run completes, 1 when it fails, crashes or is cancelled (or cannot start)."""
    import httpx
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectNotFound
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: api_url}):
        try:
            flow_run = run_deployment(deployment, parameters=parameters, timeout=0)
        except ObjectNotFound:
            print(f"pm25 trigger: no deployment {deployment!r} on {api_url}; deploy it (make serve does)", file=sys.stderr)
            return 1
        except httpx.HTTPError as error:
            print(f"pm25 trigger: cannot reach the Prefect API at {api_url} ({error}); is `make serve` running?",
                  file=sys.stderr)
            return 1
        print(f"started {deployment} flow run {flow_run.id} with parameters {parameters}\n"
              f"UI: {api_url.removesuffix('/api')}/runs/flow-run/{flow_run.id}", flush=True)
        last_state = None
        try:
            with get_client(sync_client=True) as client:
                while True:
                    run = client.read_flow_run(flow_run.id)
                    if run.state is not None and run.state.name != last_state:
                        last_state = run.state.name
                        message = f": {run.state.message}" if run.state.message else ""
                        print(f"{datetime.now():%H:%M:%S} {run.name}: {last_state}{message}", flush=True)
                    if run.state is not None and run.state.is_final():
                        return 0 if run.state.is_completed() else 1
                    time.sleep(POLL_SECONDS)
        except KeyboardInterrupt:
            print(f"stopped following; flow run {flow_run.id} goes on", file=sys.stderr)
            return 130
