"""Where a flow's mapped tasks run: threads of the flow's own process, or Dask worker processes through prefect-dask."""

from __future__ import annotations

import os

from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from tasks.core.settings import Settings


def task_runner_for(settings: Settings) -> TaskRunner:
    """Threads by default; with task_runner=dask, the cluster at `dask_address`, or a temporary local cluster of
    one single-threaded worker process per core (TensorFlow in each task then uses its worker's one thread)."""
    if settings.task_runner == "threads":
        return ThreadPoolTaskRunner(max_workers=os.cpu_count() or 1)
    from prefect_dask import DaskTaskRunner

    if settings.dask_address:
        return DaskTaskRunner(address=settings.dask_address)
    return DaskTaskRunner(cluster_kwargs={"n_workers": os.cpu_count() or 1, "threads_per_worker": 1,
                                          "processes": True, "dashboard_address": None})
