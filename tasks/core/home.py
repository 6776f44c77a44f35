"""The home's folders: where a run reads and writes under PM25_HOME, with content-derived names so unchanged inputs hit
caches, and the names of the files that stages hand each other through them.

    data/source/<sha256>.csv          byte copy of each source file
    data/raw/<sha256>.parquet         each file's table, in its own layout's columns
    data/validated/<key>.json         passing validation verdicts (per file, and of the network)
    data/rejected/<sha256>/           a refused source file and its refusal.json (read by no run; size-bounded)
    data/dataset/<key>/station=<s>/   the canonical table of the kept stations, partitioned by station
    data/features/<key>/              one station's features.parquet, preprocessing.json (and the windows.json);
                                      a backtest's retrain origin has its own, keyed by the readings before it
    models/<key>/                     model.keras, network.json, preprocessing/, windows.json, training_log.csv,
                                      training.json, intervals.json, categories.json, evaluation/, next_hours/,
                                      plots/; a backtest's models also challenges/, backtest_forecasts/
    models/registry.json              registered versions and the champion
    reports/data_quality/index.html   Great Expectations Data Docs
    reports/runs/<run id>/            metrics, predictions, plots, report.md of one run (the newest
                                      PM25_KEEP_RUNS of them)
    reports/latest -> runs/<run id>   the newest complete run
    reports/forecast/latest.*         the champion's forecast of the next hours (.json, .csv, .png)
    reports/backtest/<id>/            forecasts.parquet, verification.json, figures and report.md of a backtest
    reports/backtest/latest -> <id>   the newest complete backtest
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from tasks.core.storage import fingerprint

# Bump when a change to the code makes earlier cached features or models stale.
PIPELINE_VERSION = "5"


@dataclass(frozen=True)
class HomeFolders:
    """The folders under one PM25_HOME (not to be confused with a CSV file's layout, `tasks.data.file_layouts`)."""

    home: Path

    @property
    def source_cache(self) -> Path:
        return self.home / "data" / "source"

    @property
    def rejected(self) -> Path:
        return self.home / "data" / "rejected"

    @property
    def raw(self) -> Path:
        return self.home / "data" / "raw"

    @property
    def weather(self) -> Path:
        return self.home / "data" / "weather"

    @property
    def validated(self) -> Path:
        return self.home / "data" / "validated"

    @property
    def datasets(self) -> Path:
        return self.home / "data" / "dataset"

    @property
    def models(self) -> Path:
        return self.home / "models"

    @property
    def reports(self) -> Path:
        return self.home / "reports"

    @property
    def data_docs(self) -> Path:
        return self.reports / "data_quality"

    def features(self, dataset_key: str, station: str, *preprocessing: object) -> Path:
        return self.home / "data" / "features" / fingerprint(PIPELINE_VERSION, dataset_key, station, *preprocessing)

    def model(self, features_dirs: list[Path], *training: object) -> Path:
        """A model of the stations whose features are given: the same features and settings, the same folder."""
        return self.models / fingerprint(PIPELINE_VERSION, sorted(path.name for path in features_dirs), *training)

    def run(self, run_id: str) -> Path:
        return self.reports / "runs" / run_id

    @property
    def backtests(self) -> Path:
        return self.reports / "backtest"

    def backtest(self, backtest_id: str) -> Path:
        return self.backtests / backtest_id


RUN_ID = re.compile(r"\d{8}T\d{6}Z-[0-9a-z]+")


def new_run_id(flow_run_id: str | None) -> str:
    """Sortable and unique: UTC time plus the start of the Prefect flow run id."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{(flow_run_id or 'local')[:8]}"


def artifact_key(name: str) -> str:
    """Prefect artifact keys take lower-case letters, digits and dashes only."""
    return "".join(character if character.isalnum() else "-" for character in name.lower())


# A station's features folder (data/features/<key>/): its features and what was fitted to make them.
FEATURES_FILE = "features.parquet"
PARAMS_FILE = "preprocessing.json"
OBSERVED_WEATHER_FILE = "observed_weather.parquet"
WEATHER_MODEL_VERSION = "1"  # the station's weather at every features hour (perfect prognosis)
# A model folder (models/<key>/): the model, what it was trained on and how, and what scored and forecast with it.
MODEL_FILE = "model.keras"
NETWORK_FILE = "network.json"  # the stations the model covers, and what it reads of each
PREPROCESSING_DIR = "preprocessing"  # each station's fitted preprocessing
WINDOWS_FILE = "windows.json"
TRAINING_LOG = "training_log.csv"
TRAINING_SUMMARY = "training.json"  # written last: its presence marks a complete model folder
EVALUATION_DIR = "evaluation"
NEXT_HOURS_DIR = "next_hours"  # its forecasts of the hours after each dataset's newest hour
# A run's report folder (reports/runs/<run id>/): the pooled scores and every scored forecast.
METRICS_FILE = "metrics.json"
PREDICTIONS_FILE = "predictions.parquet"


def features_files(features_dir: Path) -> tuple[Path, Path]:
    """A station's features table and its fitted preprocessing, in its features folder."""
    return features_dir / FEATURES_FILE, features_dir / PARAMS_FILE


def weather_model_dir(network_dir: Path) -> Path:
    """Where a network model's weather model (`tasks/model/weather_model.py`) lives: inside the network model's folder,
    named by the weather model's design version (a new design trains them again)."""
    return network_dir / f"weather-{WEATHER_MODEL_VERSION}"


def observed_weather_path(features_path: Path) -> Path:
    """The weather observed at every hour of a features table, beside it."""
    return features_path.parent / OBSERVED_WEATHER_FILE


def window_plan_path(features_dir: Path, lookback: int, horizon: int) -> Path:
    """The window plan of a look-back and a horizon, kept beside the features it plans."""
    return features_dir / f"windows_{lookback}_{horizon}.json"


def station_evaluation_dir(network_dir: Path, station: str, station_dir: Path) -> Path:
    """Where a run keeps one station's span forecasts and scores: in the network model's folder, keyed by the
    station model too, so a later run of the same models reuses them."""
    return network_dir / EVALUATION_DIR / f"{station}-{station_dir.name}"


SCORED_SPANS = ("validation", "test")  # the spans a run forecasts with every model and scores


def span_forecasts_path(folder: Path, span: str) -> Path:
    """Every model's forecasts of one span (`tasks.model.span_forecasts` writes them, `tasks.scoring` reads them)."""
    return folder / f"forecasts_{span}.parquet"


def next_hours_files(folder: Path) -> tuple[Path, Path]:
    """A model's forecast of the next hours (written last) and the readings before them
    (`tasks.model.predict` writes them, `tasks.publish.forecast` publishes them)."""
    return folder / "forecast.parquet", folder / "history.parquet"
