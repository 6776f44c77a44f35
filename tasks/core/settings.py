"""The one typed configuration of pm25-pipeline: PM25_ environment variables, CLI flags, flow parameters."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import date
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

UCI_SOURCE_URL = (
    "https://archive.ics.uci.edu/ml/machine-learning-databases/00381/PRSA_data_2010.1.1-2014.12.31.csv"
)
# sha256 of the UCI file as published; a source that is this file (by URL or name) must match it.
UCI_SOURCE_SHA256 = "4127f868775e31b3956522adc0ec75af8937dde6a3896e8beed3a376c6d27f1c"
UCI_SOURCE_NAME = "PRSA_data_2010.1.1-2014.12.31.csv"

PROJECT_ROOT = Path(__file__).resolve().parents[2]
TEST_DAYS = 365
VALIDATION_DAYS = 365
MIN_TRAIN_DAYS = 365


Section = TypeVar("Section")


def section_of(kind: type[Section], settings: Settings) -> Section:
    """The fields of `kind` (a settings section) taken from `settings`; a field that is no setting keeps its default."""
    return kind(**{field.name: getattr(settings, field.name) for field in fields(kind) if field.name in
                   Settings.model_fields})


@dataclass(frozen=True)
class SourceSettings:
    """Where the readings come from, how they are fetched, the suites that check them and the quarantine's bound."""

    source: str
    weather: str | None
    download_retries: int
    retry_delay_seconds: float
    download_timeout_seconds: float
    expectations_dir: Path
    rejected_max_mb: float

    @property
    def rejected_max_bytes(self) -> int:
        return int(self.rejected_max_mb * 1024 * 1024)


@dataclass(frozen=True)
class PreprocessingSettings:
    """How readings become model inputs: gap filling, the target's space, the windows, and the spans (days)."""

    max_gap_hours: int
    target_transform: str
    lookback_hours: int
    horizon_hours: int
    test_days: int = TEST_DAYS
    validation_days: int = VALIDATION_DAYS
    min_train_days: int = MIN_TRAIN_DAYS


@dataclass(frozen=True)
class TrainingSettings:
    """How the LSTM is built and trained (each field is a setting of the same name)."""

    max_epochs: int
    patience: int
    batch_size: int
    lstm_layers: int
    lstm_units: int
    horizon_weight_power: float
    ensemble_size: int
    learning_rate: float
    dropout: float
    weight_averaging: float
    seed: int


@dataclass(frozen=True)
class BacktestSettings:
    """A backtest's origins: the days, the nightly hour, their spacing and the retraining cadence."""

    backtest_start: date | None
    backtest_end: date | None
    retrain_every: str
    forecast_at: str
    every: str


@dataclass(frozen=True)
class OperatingSettings:
    """Settings of the deployment's environment rather than of one run (never flow parameters)."""

    alert_webhook: str | None
    weather_max_age_hours: float
    open_meteo_url: str
    train_timeout_seconds: float
    backtest_timeout_seconds: float
    forecast_timeout_seconds: float
    training_timeout_seconds: float
    training_concurrency: int
    task_runner: str
    dask_address: str | None
    rejected_max_mb: float
    keep_runs: int


class Settings(BaseSettings):
    """Every knob of a run. Read from PM25_* variables; CLI flags and flow parameters override them."""

    model_config = SettingsConfigDict(env_prefix="PM25_", extra="forbid", validate_assignment=True)

    source: str = Field(UCI_SOURCE_URL, description="The source set: comma-separated http(s) URLs, files, folders or "
                        "globs of UCI station CSVs (the embassy file, multi-site station files) or zip archives of them.")
    weather: str | None = Field(None, description="Weather forecasts at the stations (the `weather_forecast` layout, "
                                "docs/weather.md) for the weather model `lstm_wx`, given like source: comma-separated "
                                "http(s) URLs, files, folders or globs of CSVs, or `open-meteo` (the live service); a run "
                                "scores `lstm_wx` fed them as issued. A backtest also takes `perfect` or `noisy`: the "
                                "station files' own weather after each origin, without or with forecast-like errors.")
    home: Path = Field(Path("pm25_home"), description="Folder under which a run writes data/, reports/ and models/.")
    max_epochs: int = Field(40, ge=1, description="Upper bound on training epochs (early stopping usually ends sooner).")
    seed: int = Field(42, description="Seed for weight initialisation and shuffling.")
    lookback_hours: int = Field(
        6, ge=1, description="Hours of history fed to the model (its inputs also carry PM2.5 means over 24 h and 72 h)."
    )
    horizon_hours: int = Field(24, ge=1, description="Hours ahead forecast at once.")
    patience: int = Field(6, ge=1, description="Early-stopping patience in epochs, on validation loss.")
    batch_size: int = Field(256, ge=1, description="Training batch size.")
    lstm_layers: int = Field(1, ge=1, description="Stacked LSTM layers.")
    lstm_units: int = Field(96, ge=1, description="Units in each LSTM layer.")
    horizon_weight_power: float = Field(
        1.5, ge=0, description="Training loss weighs horizon h (hours ahead) by h^-power; 0 weighs all alike."
    )
    ensemble_size: int = Field(
        2, ge=1, description="LSTMs trained side by side from different initial weights; the forecast is their mean."
    )
    learning_rate: float = Field(4e-3, gt=0, description="Adam learning rate.")
    weight_averaging: float = Field(
        0.99, ge=0, lt=1, description="Momentum of the moving average of the weights that is validated and saved "
        "(Polyak averaging); 0 uses the weights as trained."
    )
    dropout: float = Field(0.2, ge=0, lt=1, description="Dropout on the LSTM inputs and before the output layer.")
    max_gap_hours: int = Field(6, ge=0, description="Longest input gap bridged by carrying the last reading forward.")
    target_transform: Literal["log1p", "identity"] = Field(
        "identity", description="Space the model learns PM2.5 in; forecasts are mapped back to µg/m³."
    )
    backtest_start: date | None = Field(
        None, description="A backtest's first day of forecast origins (local date); default: 365 days before its end."
    )
    backtest_end: date | None = Field(
        None, description="A backtest's last day of forecast origins (local date, inclusive); default: the data's last day."
    )
    retrain_every: str = Field(
        "28d", pattern=r"^(0|[1-9][0-9]*[dh])$", description="How often a backtest trains a challenger, e.g. 7d or 28d; "
        "0 trains once, at the first origin."
    )
    forecast_at: str = Field(
        "02:00", pattern=r"^([01]?[0-9]|2[0-3]):00$", description="Local hour of the nightly forecast that a backtest "
        "replays (the nightly deployment's cron hour)."
    )
    every: str = Field(
        "24h", pattern=r"^[1-9][0-9]*[dh]$", description="Spacing of a backtest's forecast origins: 24h issues one "
        "forecast a day at forecast_at, 1h one every hour."
    )
    download_retries: int = Field(4, ge=0, description="Retries of a failed download or file read.")
    retry_delay_seconds: float = Field(2.0, ge=0, description="Base delay of the exponential retry backoff.")
    download_timeout_seconds: float = Field(60.0, gt=0, description="Timeout of one HTTP request.")
    expectations_dir: Path = Field(
        PROJECT_ROOT / "expectations", description="Folder of Great Expectations suites (JSON)."
    )
    alert_webhook: str | None = Field(
        None, description="URL that receives a JSON POST when a flow run fails or crashes (not a flow parameter)."
    )
    weather_max_age_hours: float = Field(
        18, gt=0, description="How old the newest weather forecast may be at a forecast's origin for the nightly run "
        "and `pm25 forecast` to issue the weather model's forecast (`lstm_wx`); older, missing or failed, they issue "
        "`lstm`'s with a warning (not a flow parameter)."
    )
    open_meteo_url: str = Field(
        "https://api.open-meteo.com", description="The Open-Meteo service that `--weather open-meteo` reads (its "
        "forecast API and model metadata) (not a flow parameter)."
    )
    train_timeout_seconds: float = Field(
        7200, gt=0, description="A train-pm25 run that is still going after this long ends TimedOut, freeing the "
        "deployment's slot for the next night (not a flow parameter)."
    )
    backtest_timeout_seconds: float = Field(
        43200, gt=0, description="The same bound on a backtest-pm25 run (not a flow parameter)."
    )
    forecast_timeout_seconds: float = Field(
        900, gt=0, description="The same bound on a forecast-pm25 run (not a flow parameter)."
    )
    training_timeout_seconds: float = Field(
        3600, gt=0, description="Bound on one model's training (train, train-weather): one still going then fails at "
        "the end of its batch, its timeout named, nothing of it saved (not a flow parameter)."
    )
    training_concurrency: int = Field(
        1, ge=1, description="Training tasks that may run at once on a Prefect server where `pm25 automations "
        "apply` (or `make serve`) set the pm25-train tag's limit: the nightly run's and a backtest's trainings "
        "queue instead of sharing the cores (not a flow parameter)."
    )

    task_runner: Literal["threads", "dask"] = Field(
        "threads", description="Where mapped per-station tasks run: threads of the flow's process, or Dask worker "
        "processes (a local cluster sized to the cores, or PM25_DASK_ADDRESS) (not a flow parameter)."
    )
    dask_address: str | None = Field(
        None, description="Scheduler of an existing Dask cluster, e.g. tcp://host:8786, used with task_runner=dask "
        "(not a flow parameter)."
    )

    rejected_max_mb: float = Field(
        100, ge=0, description="Bound on data/rejected/, the quarantine of refused source files: the oldest refusals "
        "go first, and a larger file keeps only its refusal (not a flow parameter)."
    )

    keep_runs: int = Field(
        30, ge=1, description="Run reports kept under reports/runs/ (each holds its predictions, tens of MB for a "
        "network): the newest, and always the one reports/latest points to (not a flow parameter)."
    )

    @field_validator("source", "weather")
    @classmethod
    def _source_scheme_is_supported(cls, value: str | None) -> str | None:
        for entry in (value or "").split(","):
            if "://" in entry and not entry.strip().lower().startswith(("http://", "https://")):
                raise ValueError(f"each source must be an http(s) URL or a local path, got {entry.strip()!r}")
        return value

    @property
    def sources(self) -> SourceSettings:
        return section_of(SourceSettings, self)

    @property
    def preprocessing(self) -> PreprocessingSettings:
        return section_of(PreprocessingSettings, self)

    @property
    def training(self) -> TrainingSettings:
        return section_of(TrainingSettings, self)

    @property
    def backtest(self) -> BacktestSettings:
        return section_of(BacktestSettings, self)

    @property
    def operating(self) -> OperatingSettings:
        return section_of(OperatingSettings, self)

    @classmethod
    def resolve(cls, **overrides: Any) -> Settings:
        """Settings from PM25_* variables, with the given values on top; None means "not given"."""
        return cls(**{key: value for key, value in overrides.items() if value is not None})


# Settings of the deployment's environment rather than of one run: never flow parameters.
OPERATOR_SETTINGS = frozenset(field.name for field in fields(OperatingSettings))
# Settings of the backtest flow only (its origins and schedule): not parameters of the nightly flow.
BACKTEST_SETTINGS = frozenset(field.name for field in fields(BacktestSettings))
