"""The backtest flow `backtest-pm25`: validate the source set, plan the origins, retrain at each retrain origin
(mapped: independent trainings), decide the champion of each night by the nightly rule, issue every origin's
forecast with that night's champion (mapped per champion), collect, verify, report."""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from prefect import flow, get_run_logger, runtime, unmapped

from flows.validate import DEFAULTS, TASK_RUNNER, validated_dataset
from tasks.core.home import Layout, new_run_id
from tasks.core.settings import MIN_TRAIN_DAYS, VALIDATION_DAYS, Settings
from tasks.model.train import TrainingConfig
from tasks.operate.alerts import send_alert
from tasks.operate.backtest import collect_task, plan_task, promotions_task, retrain_task, segment_task, serving
from tasks.publish.backtest_report import verify_task


def _run_name() -> str:
    parameters = runtime.flow_run.parameters
    return (f"backtest {parameters.get('backtest_start') or 'last year'} to {parameters.get('backtest_end') or 'end'}, "
            f"retrain every {parameters.get('retrain_every') or DEFAULTS.retrain_every}")


@flow(name="backtest-pm25", flow_run_name=_run_name, validate_parameters=True, on_failure=[send_alert],
      on_crashed=[send_alert], task_runner=TASK_RUNNER)
def backtest_pm25(
    source: str = DEFAULTS.source,
    home: str = str(DEFAULTS.home),
    backtest_start: date | None = DEFAULTS.backtest_start,
    backtest_end: date | None = DEFAULTS.backtest_end,
    retrain_every: str = DEFAULTS.retrain_every,
    forecast_at: str = DEFAULTS.forecast_at,
    every: str = DEFAULTS.every,
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
    """Replay the nightly process over past origins, seeing at each only the readings recorded by then, and verify
    the forecasts it would have issued."""
    settings = Settings.resolve(**{name: value for name, value in locals().items()})
    layout = Layout(settings.home)
    run_id = new_run_id(runtime.flow_run.id)
    get_run_logger().info("backtest %s: source %s, outputs under %s", run_id, settings.source, settings.home.resolve())

    dataset = validated_dataset(settings).dataset
    config = TrainingConfig.from_settings(settings)
    setup = plan_task.submit(dataset.path, settings.home, settings.backtest_start, settings.backtest_end,
                             settings.forecast_at, settings.every, settings.retrain_every, VALIDATION_DAYS, MIN_TRAIN_DAYS,
                             settings.max_gap_hours, settings.target_transform, settings.lookback_hours,
                             settings.horizon_hours, config).result()
    retrained = retrain_task.map(setup.jobs, dataset.path, VALIDATION_DAYS, MIN_TRAIN_DAYS, settings.max_gap_hours,
                                 settings.target_transform, settings.lookback_hours, settings.horizon_hours,
                                 unmapped(config), unmapped(setup.model_dirs), setup.progress_artifact).result()
    decisions = promotions_task.submit(retrained, dataset.path, VALIDATION_DAYS).result()
    served = serving(setup, decisions)
    segments = segment_task.map(dataset.path, served.model_dirs, served.origins, served.versions).result()
    backtest_dir = layout.backtest(run_id)
    forecasts = collect_task.submit(segments, dataset.path, backtest_dir / "forecasts.parquet").result()
    report = verify_task.submit(forecasts, decisions, backtest_dir, layout.backtests).result()
    return {"backtest_id": run_id, "backtest_dir": str(report.backtest_dir), "forecasts": str(report.forecasts_path),
            "verification": str(report.verification_path), "report": str(report.report_path),
            "stations": dataset.stations, "origins": len(setup.plan.origins),
            "retrain_origins": len(setup.jobs), "trained": sum(not item.cache_hit for item in retrained),
            "promoted": sum(decision.promoted for decision in decisions)}
