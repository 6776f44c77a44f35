"""`pm25 trigger`: start a deployment's flow run on a Prefect server and stream it to the end, as `prefect deployment
run --watch` would: its state changes and its logs, as the server receives them."""

from __future__ import annotations

import logging
import sys
import time
from datetime import datetime, timedelta
from typing import Any

POLL_SECONDS = 2.0
# Logs reach the server in batches, a few seconds after they were written: each poll looks back this far (the
# ones already printed are skipped by id), and after the final state the stream waits as long for the last ones.
LOG_LAG = timedelta(seconds=5)


class RunStream:
    """The new states and logs of one flow run, printed as they reach the server."""

    def __init__(self, client: Any, flow_run_id: Any) -> None:
        self.client, self.flow_run_id = client, flow_run_id
        self.last_state: str | None = None
        self.printed_logs: set[Any] = set()
        self.logs_since: datetime | None = None

    def print_state(self) -> Any:
        run = self.client.read_flow_run(self.flow_run_id)
        if run.state is not None and run.state.name != self.last_state:
            self.last_state = run.state.name
            message = f": {run.state.message}" if run.state.message else ""
            print(f"{datetime.now():%H:%M:%S} {run.name}: {self.last_state}{message}", flush=True)
        return run

    def print_logs(self) -> None:
        from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId, LogFilterTimestamp

        log_filter = LogFilter(flow_run_id=LogFilterFlowRunId(any_=[self.flow_run_id]),
                               timestamp=LogFilterTimestamp(after_=self.logs_since - LOG_LAG) if self.logs_since else None)
        for log in self.client.read_logs(log_filter=log_filter):
            if log.id in self.printed_logs:
                continue
            self.printed_logs.add(log.id)
            self.logs_since = max(self.logs_since or log.timestamp, log.timestamp)
            print(f"{log.timestamp.astimezone():%H:%M:%S} | {logging.getLevelName(log.level):<7} | {log.message}", flush=True)


def follow_deployment_run(deployment: str, parameters: dict[str, Any], api_url: str) -> int:
    """Exit status 0 when the run completes, 1 when it fails, crashes, times out or is cancelled (or cannot start)."""
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
        try:
            with get_client(sync_client=True) as client:
                stream = RunStream(client, flow_run.id)
                while True:
                    run = stream.print_state()
                    stream.print_logs()
                    if run.state is not None and run.state.is_final():
                        time.sleep(LOG_LAG.total_seconds())
                        stream.print_logs()
                        print(f"{run.name}: {run.state.name}", flush=True)
                        return 0 if run.state.is_completed() else 1
                    time.sleep(POLL_SECONDS)
        except KeyboardInterrupt:
            print(f"stopped following; flow run {flow_run.id} goes on", file=sys.stderr)
            return 130
