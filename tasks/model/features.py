"""Preprocess: hourly grid, time-based split, train-only imputation and scaling, model features.

Every fitted number comes from the training span and is saved as JSON beside the features (and later the
model), so a forecast can be reproduced without pickles and test statistics never reach training.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.core import storage
from tasks.core.errors import DataError
from tasks.core.home import features_files, observed_weather_path
from tasks.core.hours import HOURS_PER_DAY
from tasks.core.records import Dataset
from tasks.core.settings import PreprocessingSettings
from tasks.core.states import finish
from tasks.model.inputs import (
    PM25_INPUT,
    PM25_LOG,
    PM25_OBSERVED,
    SPLITS,
    TARGET_COLUMN,
    WIND_COLUMN,
    PreprocessingParams,
)
from tasks.model.weather_inputs import observed_weather

# Derived inputs, each read from the past only: the last hour's PM2.5 change, PM2.5 on a log scale (its
# spikes compressed), trailing PM2.5 means, and the recent change of wind run, dew point and pressure
# (dry northerly air arriving is what clears Beijing's haze).
# A change feature is built where its column is one of the station's inputs.
CHANGE_FEATURES = {"pm25_change_1h": (PM25_INPUT, 1), "wind_run_change_1h": ("wind_run", 1),
                   "dewp_change_3h": ("dewp", 3), "pres_change_3h": ("pres", 3)}
MEAN_FEATURES = {"pm25_mean_24h": 24, "pm25_mean_72h": 72}

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SplitBounds:
    """Half-open row ranges of the hourly grid: train [0, validation_start), validation, test [test_start, end)."""

    validation_start: int
    test_start: int
    end: int


@dataclass(frozen=True)
class PreprocessOutput:
    features_path: Path
    params_path: Path
    cache_hit: bool = False


def to_hourly_grid(raw: pd.DataFrame, input_columns: list[str], start: pd.Timestamp | str | None = None,
                   end: pd.Timestamp | str | None = None) -> pd.DataFrame:
    """One row per hour from `start` to `end` (by default the table's first and last hour); hours absent from the
    table are all-missing rows. A station's grid spans the whole network's hours, so every station's spans are
    the same hours."""
    frame = raw.set_index("timestamp").sort_index()
    first = _in_zone_of(frame.index, start) if start is not None else frame.index[0]
    last = _in_zone_of(frame.index, end) if end is not None else frame.index[-1]
    hours = pd.date_range(first, last, freq="h", name="timestamp")
    return frame[[TARGET_COLUMN, *input_columns, WIND_COLUMN]].reindex(hours)


def _in_zone_of(index: pd.DatetimeIndex, moment: pd.Timestamp | str) -> pd.Timestamp:
    """`moment` in the time zone of `index` (the same instant), so that the hours' labels match the readings'."""
    stamp = pd.Timestamp(moment)
    return stamp.tz_convert(index.tz) if index.tz is not None and stamp.tz is not None else stamp


def split_bounds(n_hours: int, test_days: int, validation_days: int, min_train_hours: int) -> SplitBounds:
    """Test = the last `test_days`, validation = the `validation_days` before, train = the rest."""
    test_start = n_hours - test_days * HOURS_PER_DAY
    validation_start = test_start - validation_days * HOURS_PER_DAY
    if validation_start < min_train_hours:
        raise DataError(
            f"too little data (rule: train/validation/test spans): {n_hours} hours cannot hold a "
            f"{test_days}-day test span, a {validation_days}-day validation span and {min_train_hours} training hours"
        )
    return SplitBounds(validation_start=validation_start, test_start=test_start, end=n_hours)


def target_forward(values: np.ndarray | pd.Series, transform: str) -> np.ndarray:
    """Map µg/m³ into the space the model learns in (before standardising)."""
    values = np.asarray(values, dtype="float64")
    return np.log1p(values) if transform == "log1p" else values


def _finite_or(value: float, default: float) -> float:
    return value if np.isfinite(value) and value != 0 else default


def fit_preprocessing(train: pd.DataFrame, max_gap_hours: int, target_transform: str, input_columns: list[str],
                      wind_categories: list[str], station: str = "") -> PreprocessingParams:
    """Fit fill values and scales on the training span only (an input never observed there is filled with 0)."""
    if train[TARGET_COLUMN].notna().sum() == 0:
        where = f"station {station}: " if station else ""
        raise DataError(f"{where}column {TARGET_COLUMN!r} is never observed in the training span (rule: target observed)")
    medians = {column: float(train[column].median()) for column in input_columns}
    fill_values = {column: value if np.isfinite(value) else 0.0 for column, value in medians.items()}
    wind_mode = train[WIND_COLUMN].mode()
    target = target_forward(train[TARGET_COLUMN].dropna(), target_transform)
    log_target = np.log1p(train[TARGET_COLUMN].dropna().to_numpy(dtype="float64"))
    filled = fill_gaps(train[list(input_columns)], max_gap_hours, fill_values)
    return PreprocessingParams(
        max_gap_hours=max_gap_hours,
        input_columns=list(input_columns),
        wind_categories=list(wind_categories),
        fill_values=fill_values,
        wind_fill=str(wind_mode.iloc[0]) if len(wind_mode) else wind_categories[0],
        scale_mean={column: float(filled[column].mean()) for column in input_columns},
        scale_std={column: _finite_or(float(filled[column].std()), 1.0) for column in input_columns},
        target_transform=target_transform,
        target_mean=float(target.mean()),
        target_std=_finite_or(float(target.std()), 1.0),
        feature_columns=feature_columns(input_columns, wind_categories),
        log_mean=float(log_target.mean()),
        log_std=_finite_or(float(log_target.std()), 1.0),
    )


def change_features(input_columns: list[str]) -> dict[str, tuple[str, int]]:
    return {name: (column, hours) for name, (column, hours) in CHANGE_FEATURES.items()
            if column == PM25_INPUT or column in input_columns}


def feature_columns(input_columns: list[str], wind_categories: list[str]) -> list[str]:
    wind = [f"wind_dir_{category}" for category in wind_categories]
    return [*input_columns, *wind, "hour_sin", "hour_cos", "doy_sin", "doy_cos", PM25_INPUT, PM25_OBSERVED,
            PM25_LOG, *change_features(input_columns), *MEAN_FEATURES]


def fill_gaps(frame: pd.DataFrame, max_gap_hours: int, fill_values: dict[str, Any]) -> pd.DataFrame:
    """Carry the last reading forward over short gaps, then use training statistics for longer ones.

    Forward filling is the time interpolation that reads no future hour: linear interpolation inside a
    look-back window would use readings taken after the forecast origin.
    """
    return frame.ffill(limit=max_gap_hours).fillna(fill_values)


def build_features(grid: pd.DataFrame, params: PreprocessingParams) -> pd.DataFrame:
    """Model inputs (scaled with `params`), the raw target (missing stays missing) and the target in model space."""
    weather = fill_gaps(grid[list(params.input_columns)], params.max_gap_hours, params.fill_values)
    wind = fill_gaps(grid[[WIND_COLUMN]], params.max_gap_hours, {WIND_COLUMN: params.wind_fill})[WIND_COLUMN]
    target_z = (target_forward(grid[TARGET_COLUMN], params.target_transform) - params.target_mean) / params.target_std
    mean_z = 0.0  # the training mean, once standardised
    pm25_input = pd.Series(target_z, index=grid.index).ffill(limit=params.max_gap_hours).fillna(mean_z)
    hour = grid.index.hour.to_numpy()
    day_of_year = grid.index.dayofyear.to_numpy() - 1
    features = pd.DataFrame(index=grid.index)
    for column in params.input_columns:
        features[column] = (weather[column] - params.scale_mean[column]) / params.scale_std[column]
    for category in params.wind_categories:
        features[f"wind_dir_{category}"] = (wind == category).astype("float64")
    features["hour_sin"] = np.sin(2 * np.pi * hour / HOURS_PER_DAY)
    features["hour_cos"] = np.cos(2 * np.pi * hour / HOURS_PER_DAY)
    features["doy_sin"] = np.sin(2 * np.pi * day_of_year / 365.25)
    features["doy_cos"] = np.cos(2 * np.pi * day_of_year / 365.25)
    features[PM25_INPUT] = pm25_input
    features[PM25_OBSERVED] = grid[TARGET_COLUMN].notna().astype("float64")
    if PM25_LOG in params.feature_columns:
        carried = grid[TARGET_COLUMN].ffill(limit=params.max_gap_hours).to_numpy(dtype="float64")
        features[PM25_LOG] = np.nan_to_num((np.log1p(carried) - params.log_mean) / params.log_std, nan=0.0)
    for name, (column, hours) in change_features(params.input_columns).items():
        features[name] = features[column].diff(hours).fillna(0.0)
    for name, hours in MEAN_FEATURES.items():
        features[name] = pm25_input.rolling(hours, min_periods=1).mean()
    features = features[params.feature_columns].astype("float32")
    features["target"] = grid[TARGET_COLUMN].astype("float64")
    features["target_z"] = target_z.astype("float32")
    return features.reset_index()


def label_splits(n_hours: int, bounds: SplitBounds) -> np.ndarray:
    labels = np.full(n_hours, "train", dtype=object)
    labels[bounds.validation_start : bounds.test_start] = "validation"
    labels[bounds.test_start :] = "test"
    return labels


def station_grid(dataset: Dataset, station: str) -> pd.DataFrame:
    """A station's hourly grid over the whole network's hours, in the dataset's input columns."""
    return to_hourly_grid(pd.read_parquet(dataset.station_path(station)), dataset.input_columns, dataset.start, dataset.end)


def is_preprocessed(output_dir: Path) -> bool:
    """Whether the folder holds every file `write_features` writes (features.parquet last)."""
    features_path, params_path = features_files(output_dir)
    return all(path.exists() for path in (observed_weather_path(features_path), params_path, features_path))


def preprocess(dataset_path: Path, station: str, output_dir: Path, preprocessing: PreprocessingSettings) -> PreprocessOutput:
    """Turn one station of the validated dataset into `features.parquet` and `preprocessing.json` in `output_dir`."""
    features_path, params_path = features_files(output_dir)
    if is_preprocessed(output_dir):
        log.info("preprocess cache hit: %s", output_dir)
        return PreprocessOutput(features_path, params_path, cache_hit=True)
    dataset = Dataset.load(dataset_path)
    grid = station_grid(dataset, station)
    bounds = split_bounds(len(grid), preprocessing.test_days, preprocessing.validation_days,
                          preprocessing.min_train_days * HOURS_PER_DAY)
    return write_features(grid, bounds, dataset, station, output_dir, preprocessing)


def preprocess_before(dataset_path: Path, station: str, origin: pd.Timestamp, output_dir: Path,
                      preprocessing: PreprocessingSettings) -> PreprocessOutput:
    """Features of the readings recorded before `origin` only: the validation days before it are the validation
    span, the hours before those the training span, and there is no test span (the backtest's retraining)."""
    features_path, params_path = features_files(output_dir)
    if is_preprocessed(output_dir):
        log.info("preprocess cache hit: %s", output_dir)
        return PreprocessOutput(features_path, params_path, cache_hit=True)
    dataset = Dataset.load(dataset_path)
    grid = to_hourly_grid(dataset.readings(station, origin), dataset.input_columns, dataset.start,
                          origin - pd.Timedelta(hours=1))
    bounds = split_bounds(len(grid), 0, preprocessing.validation_days, preprocessing.min_train_days * HOURS_PER_DAY)
    return write_features(grid, bounds, dataset, station, output_dir, preprocessing)


def write_features(grid: pd.DataFrame, bounds: SplitBounds, dataset: Dataset, station: str, output_dir: Path,
                   preprocessing: PreprocessingSettings) -> PreprocessOutput:
    """Fit the preprocessing on the training span of `grid`, build every hour's features, label the spans, write."""
    features_path, params_path = features_files(output_dir)
    params = fit_preprocessing(grid.iloc[: bounds.validation_start], preprocessing.max_gap_hours,
                               preprocessing.target_transform, dataset.input_columns, dataset.wind_categories, station)
    spans = {"validation": grid.iloc[bounds.validation_start : bounds.test_start], "test": grid.iloc[bounds.test_start :]}
    for name, span in spans.items():
        if len(span) and span[TARGET_COLUMN].notna().sum() == 0:
            raise DataError(f"station {station}: column {TARGET_COLUMN!r} is never observed in the {name} span "
                            "(rule: target observed)")
    features = build_features(grid, params)
    features["split"] = label_splits(len(features), bounds)
    storage.write_parquet(observed_weather_path(features_path), observed_weather(grid.reset_index()))
    storage.write_json(params_path, {**params.to_json(), "splits": split_summary(features)})
    storage.write_parquet(features_path, features)
    log.info("features: %s", split_summary(features))
    return PreprocessOutput(features_path, params_path)


def split_summary(features: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """First and last hour and the count of observed targets in each span, for logs and reports."""
    summary = {}
    for name in SPLITS:
        span = features[features["split"] == name]
        if span.empty:
            continue
        summary[name] = {
            "start": span["timestamp"].iloc[0].isoformat(),
            "end": span["timestamp"].iloc[-1].isoformat(),
            "hours": len(span),
            "observed_targets": int(span["target"].notna().sum()),
        }
    return summary


@task(cache_policy=NO_CACHE, name="preprocess", task_run_name="preprocess {station}")
def preprocess_task(dataset_path: Path, station: str, output_dir: Path, preprocessing: PreprocessingSettings,
                    as_of: str | None = None) -> PreprocessOutput:
    """The station's features with a test span (the nightly flow), or, `as_of` a time, of the readings recorded
    before it only (a backtest's retrain origin)."""
    output = (preprocess(dataset_path, station, output_dir, preprocessing) if as_of is None else
              preprocess_before(dataset_path, station, pd.Timestamp(as_of), output_dir, preprocessing))
    return finish(output, output.cache_hit, "preprocess")
