"""The nightly training flow `train-pm25`: per source file ingest → validate; the network's dataset; per station
preprocess; windows; train (the network model and one model per station) → per station evaluate → pooled scores
→ report → register (champion promotion) → forecast every station."""

from __future__ import annotations

from typing import Any, Literal

from prefect import flow, get_run_logger, runtime, unmapped

from flows.validate import DEFAULTS, TASK_RUNNER, validated_dataset
from tasks.core.home import Layout, new_run_id
from tasks.core.hours import HOURS_PER_DAY
from tasks.core.settings import (
    BACKTEST_SETTINGS,
    MIN_TRAIN_DAYS,
    OPERATOR_SETTINGS,
    TEST_DAYS,
    VALIDATION_DAYS,
    Settings,
)
from tasks.model.features import preprocess_task
from tasks.model.train import NETWORK_MODEL, TRAINING_LOG, TrainingConfig, model_plan, station_model, train_task
from tasks.model.windows import windows_task
from tasks.operate.alerts import send_alert
from tasks.operate.promote import register_task
from tasks.publish.forecast import forecast_task
from tasks.publish.run_report import PLOTS_DIR, report_task
from tasks.scoring.evaluate import evaluate_task, score_network_task


def _run_name() -> str:
    source = str(runtime.flow_run.parameters.get("source") or DEFAULTS.source)
    return f"train {source.rstrip('/').rsplit('/', 1)[-1]} {runtime.flow_run.scheduled_start_time:%Y-%m-%d %H:%M}"


@flow(name="train-pm25", flow_run_name=_run_name, validate_parameters=True, on_failure=[send_alert],
      on_crashed=[send_alert], task_runner=TASK_RUNNER)
def train_pm25(
    source: str = DEFAULTS.source,
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
    layout = Layout(settings.home)
    run_id = new_run_id(runtime.flow_run.id)
    logger.info("run %s: source %s, outputs under %s", run_id, settings.source, settings.home.resolve())

    validated = validated_dataset(settings)
    dataset = validated.dataset
    stations = dataset.stations

    features_dirs = [layout.features(dataset.key, station, settings.max_gap_hours, settings.target_transform,
                                     TEST_DAYS, VALIDATION_DAYS) for station in stations]
    prepared = preprocess_task.map(dataset.path, stations, features_dirs, TEST_DAYS, VALIDATION_DAYS,
                                   MIN_TRAIN_DAYS * HOURS_PER_DAY, settings.max_gap_hours,
                                   settings.target_transform).result()
    feature_paths = {station: output.features_path for station, output in zip(stations, prepared)}
    params_paths = {station: output.params_path for station, output in zip(stations, prepared)}
    plan_path = windows_task.submit(prepared[0].features_path, prepared[0].params_path, settings.lookback_hours,
                                    settings.horizon_hours, features_dirs[0] / f"windows_{settings.lookback_hours}_"
                                    f"{settings.horizon_hours}.json").result()

    config = TrainingConfig.from_settings(settings)
    plan = model_plan(layout, stations, features_dirs, plan_path.name, config)
    trainings = train_task.map(plan.distinct, [plan.feature_paths(name, feature_paths) for name in plan.distinct],
                               [plan.feature_paths(name, params_paths) for name in plan.distinct], plan_path,
                               [plan.model_dirs[name] for name in plan.distinct], config).result()
    trained = plan.by_name(trainings)
    network = trained[NETWORK_MODEL]

    run_dir = layout.run(run_id)
    evaluations = evaluate_task.map(stations, unmapped(feature_paths), plan_path, network.model_dir,
                                    [trained[station_model(station)].model_dir for station in stations],
                                    settings.seed).result()
    evaluation = score_network_task.submit(evaluations, settings.horizon_hours, run_dir, network.model_dir).result()
    report = report_task.submit(run_dir, layout.reports, evaluation.metrics_path, evaluation.predictions_path,
                                network.model_dir / TRAINING_LOG, network.model_dir / PLOTS_DIR,
                                validated.summary.docs_index, run_id, validated.summary.left_out,
                                settings.keep_runs).result()
    version = register_task.submit(layout.models, network.model_dir, dataset.path, evaluation.metrics_path, run_id,
                                   dataset.key, settings.model_dump(mode="json", exclude=set(OPERATOR_SETTINGS | BACKTEST_SETTINGS)),
                                   TEST_DAYS).result()
    forecast = forecast_task.submit(dataset.path, layout.models, layout.reports, settings.expectations_dir).result()
    return {"run_id": run_id, "run_dir": str(report.run_dir), "report": str(report.report_path),
            "dataset": str(dataset.path), "stations": stations, "left_out": validated.summary.left_out,
            "model": str(network.model_path), "model_version": version.version,
            "promoted": version.challenge["promoted"], "decision": version.challenge["reason"],
            "forecast": str(forecast.json_path), "forecast_map": str(forecast.map_path) if forecast.map_path else None,
            "metrics": report.metrics_rows}
