"""The nightly training flow `train-pm25`: ingest → validate → preprocess → windows → train → evaluate → report
→ register (champion promotion) → forecast."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from prefect import flow, get_run_logger, runtime

from flows.validate import DEFAULTS, validated_table
from tasks.alerts import send_alert
from tasks.evaluate import evaluate_task
from tasks.forecast import forecast_task
from tasks.layout import Layout, new_run_id
from tasks.preprocess import preprocess_task
from tasks.promote import register_task
from tasks.report import PLOTS_DIR, report_task
from tasks.settings import MIN_TRAIN_DAYS, OPERATOR_SETTINGS, TEST_DAYS, VALIDATION_DAYS, Settings
from tasks.train import TRAINING_LOG, TrainingConfig, train_task
from tasks.windows import windows_task

HOURS_PER_DAY = 24


def _run_name() -> str:
    source = str(runtime.flow_run.parameters.get("source") or DEFAULTS.source)
    return f"train {source.rsplit('/', 1)[-1]} {runtime.flow_run.scheduled_start_time:%Y-%m-%d %H:%M}"


@flow(name="train-pm25", flow_run_name=_run_name, validate_parameters=True, on_failure=[send_alert],
      on_crashed=[send_alert])
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
    """Train and evaluate the PM2.5 LSTM, register it (champion if it beats the current one), forecast."""
    settings = Settings.resolve(**{name: value for name, value in locals().items()})
    logger = get_run_logger()
    layout = Layout(settings.home)
    run_id = new_run_id(runtime.flow_run.id)
    logger.info("run %s: source %s, outputs under %s", run_id, settings.source, settings.home.resolve())

    quality = validated_table(settings)
    raw_path = Path(quality.data_path)

    features_dir = layout.features(raw_path, settings.max_gap_hours, settings.target_transform, TEST_DAYS, VALIDATION_DAYS)
    prepared = preprocess_task(raw_path, features_dir, TEST_DAYS, VALIDATION_DAYS, MIN_TRAIN_DAYS * HOURS_PER_DAY,
                               settings.max_gap_hours, settings.target_transform)
    plan_path = windows_task(prepared.features_path, prepared.params_path, settings.lookback_hours,
                             settings.horizon_hours, features_dir / f"windows_{settings.lookback_hours}_{settings.horizon_hours}.json")

    config = TrainingConfig.from_settings(settings)
    model_dir = layout.model(features_dir, plan_path.name, config)
    trained = train_task(prepared.features_path, prepared.params_path, plan_path, model_dir, config)

    run_dir = layout.run(run_id)
    evaluation = evaluate_task(prepared.features_path, plan_path, prepared.params_path, trained.model_dir, run_dir,
                               settings.seed)
    report = report_task(run_dir, layout.reports, evaluation.metrics_path, evaluation.predictions_path,
                         trained.model_dir / TRAINING_LOG, trained.model_dir / PLOTS_DIR, quality.docs_index, run_id)
    version = register_task(layout.models, trained.model_dir, raw_path, evaluation.metrics_path, run_id, raw_path.stem,
                            settings.model_dump(mode="json", exclude=set(OPERATOR_SETTINGS)), TEST_DAYS)
    forecast = forecast_task(raw_path, layout.models, layout.reports, raw_path.stem)
    return {"run_id": run_id, "run_dir": str(report.run_dir), "report": str(report.report_path),
            "model": str(trained.model_path), "model_version": version.version,
            "promoted": version.challenge["promoted"], "forecast": str(forecast.json_path), "metrics": report.metrics_rows}
