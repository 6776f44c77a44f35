"""The nightly training flow `train-pm25`: per source file ingest → validate; the network's dataset; the nightly unit
(per station preprocess; windows; train the network model and one model per station; calibrate the network
model's intervals); per station every model's span forecasts → scores → pooled scores → report → register
(champion promotion) → forecast every station."""

from __future__ import annotations

from typing import Any, Literal

from prefect import flow, get_run_logger, runtime, unmapped

from flows.forecast import champion_forecast
from flows.nightly import submit_night
from flows.validate import DEFAULTS, TASK_RUNNER, validated_dataset, weather_feed
from tasks.core.home import HomeFolders, features_files, new_run_id, station_evaluation_dir
from tasks.core.settings import BACKTEST_SETTINGS, OPERATOR_SETTINGS, Settings
from tasks.model.plan import plan_nights, station_model
from tasks.model.predict import newest_span_forecast
from tasks.model.span_forecasts import NETWORK_LSTM, STATION_LSTM, SpanModels, span_forecasts_task
from tasks.operate.alerts import send_alert
from tasks.operate.promote import Candidate, Challenge, register_task
from tasks.publish.run_report import report_task
from tasks.scoring.evaluate import evaluate_task, score_network_task


def _run_name() -> str:
    source = str(runtime.flow_run.parameters.get("source") or DEFAULTS.source)
    return f"train {source.rstrip('/').rsplit('/', 1)[-1]} {runtime.flow_run.scheduled_start_time:%Y-%m-%d %H:%M}"


@flow(name="train-pm25", flow_run_name=_run_name, validate_parameters=True, on_failure=[send_alert],
      on_crashed=[send_alert], task_runner=TASK_RUNNER, timeout_seconds=DEFAULTS.train_timeout_seconds)
def train_pm25(
    source: str = DEFAULTS.source,
    weather: str | None = DEFAULTS.weather,
    home: str = str(DEFAULTS.home),
    max_epochs: int = DEFAULTS.max_epochs,
    seed: int = DEFAULTS.seed,
    lookback_hours: int = DEFAULTS.lookback_hours,
    horizon_hours: int = DEFAULTS.horizon_hours,
    patience: int = DEFAULTS.patience,
    batch_size: int = DEFAULTS.batch_size,
    lstm_layers: int = DEFAULTS.lstm_layers,
    lstm_units: int = DEFAULTS.lstm_units,
    horizon_weight_power: float = DEFAULTS.horizon_weight_power,
    ensemble_size: int = DEFAULTS.ensemble_size,
    learning_rate: float = DEFAULTS.learning_rate,
    weight_averaging: float = DEFAULTS.weight_averaging,
    dropout: float = DEFAULTS.dropout,
    max_gap_hours: int = DEFAULTS.max_gap_hours,
    target_transform: Literal["log1p", "identity"] = DEFAULTS.target_transform,
    download_retries: int = DEFAULTS.download_retries,
    retry_delay_seconds: float = DEFAULTS.retry_delay_seconds,
    download_timeout_seconds: float = DEFAULTS.download_timeout_seconds,
    expectations_dir: str = str(DEFAULTS.expectations_dir),
) -> dict[str, Any]:
    """Train and evaluate the network LSTM and one LSTM per station, score them beside the baselines, register the
    network model (champion if it beats the current one), forecast every station."""
    settings = Settings.resolve(**{name: value for name, value in locals().items()})
    logger = get_run_logger()
    folders = HomeFolders(settings.home)
    run_id = new_run_id(runtime.flow_run.id)
    logger.info("run %s: source %s, outputs under %s", run_id, settings.source, settings.home.resolve())

    validated = validated_dataset(settings)
    dataset = validated.dataset
    stations = dataset.stations

    [job] = plan_nights(folders, dataset, settings.preprocessing, settings.training, [None], weather=True)
    night = submit_night(dataset.path, job, settings).result()
    network = night.network

    feature_paths = {station: features_files(folder)[0] for station, folder in job.features_dirs.items()}
    station_dirs = [night.trained[station_model(station)].model_dir for station in stations]
    feed = weather_feed(settings, stations)
    issued = None if feed is None else feed.table_path
    forecasts = span_forecasts_task.map(
        stations, unmapped(feature_paths), job.plan_path,
        [SpanModels({NETWORK_LSTM: network.model_dir, STATION_LSTM: station_dir}, job.weather_dir, issued)
         for station_dir in station_dirs],
        [station_evaluation_dir(network.model_dir, station, folder) for station, folder in zip(stations, station_dirs)],
        settings.seed)
    evaluations = evaluate_task.map(stations, forecasts, network.model_dir, len(stations), job.weather_dir).result()
    run_dir = folders.run(run_id)
    evaluation = score_network_task.submit(evaluations, settings.horizon_hours, run_dir, network.model_dir).result()
    report = report_task.submit(run_dir, folders.reports, network.model_dir, validated.summary,
                                settings.keep_runs).result()
    candidate = Candidate(model_dir=network.model_dir, run_id=run_id, source_sha256=dataset.key,
                          settings=settings.model_dump(mode="json", exclude=set(OPERATOR_SETTINGS | BACKTEST_SETTINGS)),
                          metrics_path=evaluation.metrics_path)
    challenge = Challenge(dataset.path, settings.preprocessing.test_days, newest_span_forecast)
    version = register_task.submit(folders.models, candidate, challenge).result()
    forecast = champion_forecast(dataset.path, folders, settings.expectations_dir, feed)
    return {"run_id": run_id, "run_dir": str(report.run_dir), "report": str(report.report_path),
            "dataset": str(dataset.path), "stations": stations, "left_out": validated.summary.left_out,
            "model": str(network.model_path), "model_version": version.version,
            "promoted": version.challenge["promoted"], "decision": version.challenge["reason"],
            "forecast": str(forecast.json_path), "forecast_map": str(forecast.map_path) if forecast.map_path else None,
            "metrics": report.metrics_rows}
