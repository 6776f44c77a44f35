"""The nightly training flow `train-pm25`: ingest → validate → preprocess → windows → train → evaluate → report."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from prefect import flow, get_run_logger, runtime

from flows.validate import validate_pm25
from tasks.evaluate import evaluate_task
from tasks.layout import Layout, new_run_id
from tasks.preprocess import preprocess_task
from tasks.report import report_task
from tasks.settings import MIN_TRAIN_DAYS, TEST_DAYS, VALIDATION_DAYS, Settings
from tasks.train import TRAINING_LOG, TrainingConfig, train_task
from tasks.windows import windows_task

HOURS_PER_DAY = 24


def _run_name() -> str:
    source = str(runtime.flow_run.parameters.get("source") or Settings().source)
    return f"train {source.rsplit('/', 1)[-1]} {runtime.flow_run.scheduled_start_time:%Y-%m-%d %H:%M}"


@flow(name="train-pm25", flow_run_name=_run_name, validate_parameters=True)
def train_pm25(
    source: str | None = None,
    home: str | None = None,
    max_epochs: int | None = None,
    seed: int | None = None,
    lookback_hours: int | None = None,
    horizon_hours: int | None = None,
    patience: int | None = None,
    batch_size: int | None = None,
    lstm_units: int | None = None,
    learning_rate: float | None = None,
    dropout: float | None = None,
    max_gap_hours: int | None = None,
    target_transform: Literal["log1p", "identity"] | None = None,
    download_retries: int | None = None,
    retry_delay_seconds: float | None = None,
    download_timeout_seconds: float | None = None,
    expectations_dir: str | None = None,
) -> dict[str, Any]:
    """Train and evaluate the PM2.5 LSTM. A parameter left empty takes its PM25_* variable or default."""
    settings = Settings.resolve(**{name: value for name, value in locals().items()})
    logger = get_run_logger()
    layout = Layout(settings.home)
    run_id = new_run_id(runtime.flow_run.id)
    logger.info("run %s: source %s, outputs under %s", run_id, settings.source, settings.home.resolve())

    quality = validate_pm25(
        source=settings.source, home=str(settings.home), download_retries=settings.download_retries,
        retry_delay_seconds=settings.retry_delay_seconds, download_timeout_seconds=settings.download_timeout_seconds,
        expectations_dir=str(settings.expectations_dir),
    )
    raw_path = Path(quality["data_path"])

    features_dir = layout.features(raw_path, settings.max_gap_hours, settings.target_transform, TEST_DAYS, VALIDATION_DAYS)
    prepared = preprocess_task(raw_path, features_dir, TEST_DAYS, VALIDATION_DAYS, MIN_TRAIN_DAYS * HOURS_PER_DAY,
                               settings.max_gap_hours, settings.target_transform)
    plan_path = windows_task(prepared.features_path, prepared.params_path, settings.lookback_hours,
                             settings.horizon_hours, features_dir / f"windows_{settings.lookback_hours}_{settings.horizon_hours}.json")

    config = TrainingConfig(max_epochs=settings.max_epochs, patience=settings.patience, batch_size=settings.batch_size,
                            lstm_units=settings.lstm_units, learning_rate=settings.learning_rate, dropout=settings.dropout,
                            seed=settings.seed)
    model_dir = layout.model(features_dir, plan_path.name, config)
    trained = train_task(prepared.features_path, prepared.params_path, plan_path, model_dir, config)

    run_dir = layout.run(run_id)
    evaluation = evaluate_task(prepared.features_path, plan_path, prepared.params_path, trained.model_dir, run_dir,
                               settings.seed)
    report = report_task(run_dir, layout.reports, evaluation.metrics_path, evaluation.predictions_path,
                         trained.model_dir / TRAINING_LOG, quality["docs_index"], run_id)
    return {"run_id": run_id, "run_dir": str(report.run_dir), "report": str(report.report_path),
            "model": str(trained.model_path), "metrics": report.metrics_rows}
