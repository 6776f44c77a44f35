"""The `forecast-pm25` flow: the champion model's forecast of the hours after the newest validated hour."""

from __future__ import annotations

from typing import Any

from prefect import flow, runtime

from flows.validate import DEFAULTS, TASK_RUNNER, validated_dataset
from tasks.core.home import Layout
from tasks.core.settings import Settings
from tasks.operate.alerts import send_alert
from tasks.publish.forecast import forecast_task


def _run_name() -> str:
    return f"forecast {runtime.flow_run.scheduled_start_time:%Y-%m-%d %H:%M}"


@flow(name="forecast-pm25", flow_run_name=_run_name, validate_parameters=True, on_failure=[send_alert],
      on_crashed=[send_alert], task_runner=TASK_RUNNER)
def forecast_pm25(
    source: str = DEFAULTS.source,
    home: str = str(DEFAULTS.home),
    download_retries: int = DEFAULTS.download_retries,
    retry_delay_seconds: float = DEFAULTS.retry_delay_seconds,
    download_timeout_seconds: float = DEFAULTS.download_timeout_seconds,
    expectations_dir: str = str(DEFAULTS.expectations_dir),
) -> dict[str, Any]:
    """Validate the newest data (cached when unchanged) and write the champion's forecast of every station under
    reports/forecast/."""
    settings = Settings.resolve(**{name: value for name, value in locals().items()})
    validated = validated_dataset(settings)
    layout = Layout(settings.home)
    output = forecast_task.submit(validated.dataset.path, layout.models, layout.reports, settings.expectations_dir).result()
    return {"origin": output.origin, "model_version": output.model_version, "stations": output.stations,
            "json": str(output.json_path), "csv": str(output.csv_path), "plot": str(output.plot_path),
            "map": str(output.map_path) if output.map_path else None}
