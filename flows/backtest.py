"""The backtest flow `backtest-pm25`: validate the source set, plan the origins, run the nightly unit at each retrain
origin (side by side: independent nights), decide the champion of each night by the nightly rule, issue every
origin's forecast with that night's champion (mapped per champion), collect, verify, report."""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from prefect import flow, get_run_logger, runtime, unmapped

from flows.nightly import submit_night
from flows.validate import DEFAULTS, TASK_RUNNER, replay_weather, validated_dataset
from tasks.core.home import HomeFolders, new_run_id
from tasks.core.settings import Settings
from tasks.model.issued_forecasts import segment_task
from tasks.model.plan import plan_nights
from tasks.model.predict import newest_span_forecast
from tasks.operate.alerts import send_alert
from tasks.operate.backtest import Retrained, collect_task, plan_task, progress_task, promotions_task, serving
from tasks.operate.promote import Challenge
from tasks.publish.backtest_report import backtest_report_task
from tasks.scoring.verify import VERIFICATION_FILE, verify_task


def _run_name() -> str:
    parameters = runtime.flow_run.parameters
    return (f"backtest {parameters.get('backtest_start') or 'last year'} to {parameters.get('backtest_end') or 'end'}, "
            f"retrain every {parameters.get('retrain_every') or DEFAULTS.retrain_every}")


@flow(name="backtest-pm25", flow_run_name=_run_name, validate_parameters=True, on_failure=[send_alert],
      on_crashed=[send_alert], task_runner=TASK_RUNNER, timeout_seconds=DEFAULTS.backtest_timeout_seconds)
def backtest_pm25(
    source: str = DEFAULTS.source,
    weather: str | None = DEFAULTS.weather,
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
    folders = HomeFolders(settings.home)
    run_id = new_run_id(runtime.flow_run.id)
    get_run_logger().info("backtest %s: source %s, outputs under %s", run_id, settings.source, settings.home.resolve())

    dataset = validated_dataset(settings).dataset
    setup = plan_task.submit(dataset.path, settings.backtest, settings.preprocessing).result()
    weather = replay_weather(settings, dataset.stations)
    jobs = plan_nights(folders, dataset, settings.preprocessing, settings.training, setup.plan.retrain_origins,
                       weather=weather is not None)
    model_dirs = [job.network_dir for job in jobs]
    submitted = [submit_night(dataset.path, job, settings) for job in jobs]
    retrained = []
    for night in (item.result() for item in submitted):
        network = night.network
        retrained.append(Retrained(night.job.as_of, network.model_dir, network.epochs_run, network.seconds,
                                   network.cache_hit))
        progress_task.submit(setup.progress_artifact, night.job.as_of, model_dirs).result()
    challenge = Challenge(dataset.path, settings.preprocessing.validation_days, newest_span_forecast)
    decisions = promotions_task.submit(retrained, challenge).result()
    served = serving(setup.plan, decisions, folders.models)
    segments = segment_task.map(dataset.path, served.model_dirs, served.origins, served.versions,
                                unmapped(weather)).result()
    backtest_dir = folders.backtest(run_id)
    forecasts = collect_task.submit(segments, dataset.path, backtest_dir / "forecasts.parquet").result()
    verification = verify_task.submit(forecasts, decisions, backtest_dir / VERIFICATION_FILE,
                                      weather and weather.label).result()
    report = backtest_report_task.submit(forecasts, verification, folders.backtests).result()
    return {"backtest_id": run_id, "backtest_dir": str(report.backtest_dir), "forecasts": str(report.forecasts_path),
            "verification": str(report.verification_path), "report": str(report.report_path),
            "stations": dataset.stations, "origins": len(setup.plan.origins),
            "retrain_origins": len(jobs), "trained": sum(not item.cache_hit for item in retrained),
            "promoted": sum(decision.promoted for decision in decisions)}
