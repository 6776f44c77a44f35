"""The `forecast-pm25` flow: the champion model's forecast of the hours after the newest validated hour."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, runtime

from flows.validate import DEFAULTS, TASK_RUNNER, validated_dataset, weather_feed
from tasks.core.home import HomeFolders
from tasks.core.settings import Settings
from tasks.core.weather import WeatherFeed
from tasks.model.predict import next_hours_task
from tasks.operate.alerts import send_alert
from tasks.operate.registry import champion_task
from tasks.publish.forecast import HISTORY_HOURS_PLOTTED, ForecastOutput, forecast_task


def champion_forecast(dataset_path: Path, folders: HomeFolders, expectations_dir: Path,
                      feed: WeatherFeed | None) -> ForecastOutput:
    """The champion (the registry), its forecast of the next hours (the model, or its weather model where `feed` holds
    a fresh forecast of the weather) and their publication."""
    version = champion_task.submit(folders.models).result()
    next_hours = next_hours_task.submit(dataset_path, folders.models / version.model_dir, HISTORY_HOURS_PLOTTED, feed)
    return forecast_task.submit(next_hours, version, folders.models, folders.reports, expectations_dir).result()


def _run_name() -> str:
    return f"forecast {runtime.flow_run.scheduled_start_time:%Y-%m-%d %H:%M}"


@flow(name="forecast-pm25", flow_run_name=_run_name, validate_parameters=True, on_failure=[send_alert],
      on_crashed=[send_alert], task_runner=TASK_RUNNER, timeout_seconds=DEFAULTS.forecast_timeout_seconds)
def forecast_pm25(
    source: str = DEFAULTS.source,
    weather: str | None = DEFAULTS.weather,
    home: str = str(DEFAULTS.home),
    download_retries: int = DEFAULTS.download_retries,
    retry_delay_seconds: float = DEFAULTS.retry_delay_seconds,
    download_timeout_seconds: float = DEFAULTS.download_timeout_seconds,
    expectations_dir: str = str(DEFAULTS.expectations_dir),
) -> dict[str, Any]:
    """Validate the newest data (cached when unchanged) and write the champion's forecast of every station under
    reports/forecast/: its weather model's (`lstm_wx`) where `weather` holds a fresh forecast of the next hours."""
    settings = Settings.resolve(**{name: value for name, value in locals().items()})
    validated = validated_dataset(settings)
    feed = weather_feed(settings, validated.dataset.stations)
    output = champion_forecast(validated.dataset.path, HomeFolders(settings.home), settings.expectations_dir, feed)
    return {"origin": output.origin, "model_version": output.model_version, "stations": output.stations,
            "json": str(output.json_path), "csv": str(output.csv_path), "plot": str(output.plot_path),
            "map": str(output.map_path) if output.map_path else None}
