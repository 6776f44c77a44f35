"""Windows: sliding look-back windows and multi-horizon targets, as strided views (no per-window copy).

A sample's origin is the last hour of its look-back window; its targets are the next `horizon` hours.
A sample belongs to a span when at least one of its target hours lies in that span; target hours outside
the span are masked (NaN), so no training loss ever sees a validation or test hour.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.core import storage
from tasks.core.errors import DataError
from tasks.model.inputs import PM25_INPUT, SPLITS, PreprocessingParams, target_inverse


@dataclass(frozen=True)
class WindowPlan:
    """Where each span's samples start and stop, as origin row positions in features.parquet."""

    lookback: int
    horizon: int
    feature_columns: list[str]
    origins: dict[str, tuple[int, int]]

    def to_json(self) -> dict:
        return {"lookback": self.lookback, "horizon": self.horizon, "feature_columns": self.feature_columns,
                "origins": {name: list(bounds) for name, bounds in self.origins.items()}}

    @classmethod
    def from_json(cls, payload: dict) -> WindowPlan:
        return cls(payload["lookback"], payload["horizon"], payload["feature_columns"],
                   {name: (int(a), int(b)) for name, (a, b) in payload["origins"].items()})


@dataclass(frozen=True)
class WindowSet:
    """Samples of one span: inputs (n, lookback, features), targets and last input value (target space), and for a
    model that reads the hours it forecasts (the weather model) their inputs (n, horizon, inputs)."""

    inputs: np.ndarray
    targets: np.ndarray
    last_value: np.ndarray
    origin_index: np.ndarray
    future: np.ndarray | None = None

    @property
    def model_inputs(self) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """What the model is fed: the look-back windows, with the future inputs where it reads them."""
        return self.inputs if self.future is None else (self.inputs, self.future)


def window_inputs(features: np.ndarray, lookback: int) -> np.ndarray:
    """All look-back windows of a (time, features) array as a read-only view of shape (n, lookback, features)."""
    return sliding_window_view(features, lookback, axis=0).transpose(0, 2, 1)


def future_targets(target: np.ndarray, horizon: int) -> np.ndarray:
    """Row t holds target[t+1 .. t+horizon]; hours past the end are NaN. Shape (time, horizon)."""
    padded = np.concatenate([target, np.full(horizon, np.nan, dtype=target.dtype)])
    return sliding_window_view(padded[1:], horizon)


def span_origins(split: np.ndarray, name: str, lookback: int, horizon: int) -> tuple[int, int]:
    """Origin rows [first, stop) of span `name`: o belongs when o+1..o+horizon meets it and o has a full look-back."""
    rows = np.flatnonzero(split == name)
    if rows.size == 0:
        raise DataError(f"the {name} span is empty (rule: train/validation/test spans)")
    first = max(int(rows[0]) - horizon, lookback - 1)
    last = int(rows[-1]) - 1
    if last < first:
        raise DataError(f"the {name} span is too short for a {lookback} h look-back (rule: enough windows)")
    return first, last + 1


def plan_windows(split: np.ndarray, lookback: int, horizon: int, feature_columns: list[str],
                 spans: tuple[str, ...] = SPLITS) -> WindowPlan:
    """Origins of every span (see `span_origins`)."""
    origins = {name: span_origins(split, name, lookback, horizon) for name in spans}
    return WindowPlan(lookback, horizon, list(feature_columns), origins)


def make_window_set(features: pd.DataFrame, plan: WindowPlan, span: str, values: np.ndarray | None = None) -> WindowSet:
    """Inputs, masked targets and last observed values for the samples of `span`.

    `values` are the model's inputs per hour when they are more than the station's own features (a network
    model's); by default the plan's feature columns."""
    start, stop = plan.origins[span]
    if values is None:
        values = features[plan.feature_columns].to_numpy(dtype="float32")
    target = features["target_z"].to_numpy(dtype="float32")
    in_span = (features["split"] == span).to_numpy()
    masked_target = np.where(in_span, target, np.nan).astype("float32")
    window_start = start - plan.lookback + 1
    inputs = window_inputs(values, plan.lookback)[window_start : stop - plan.lookback + 1]
    return WindowSet(
        inputs=inputs,
        targets=future_targets(masked_target, plan.horizon)[start:stop],
        last_value=features[PM25_INPUT].to_numpy(dtype="float32")[start:stop],
        origin_index=np.arange(start, stop),
    )


def observed_targets(series: np.ndarray, windows: WindowSet) -> np.ndarray:
    """Readings in µg/m³ at each sample's target hours; NaN where unobserved or outside the span."""
    horizon = windows.targets.shape[1]
    rows = windows.origin_index[:, None] + np.arange(1, horizon + 1)
    return np.where(np.isfinite(windows.targets), np.pad(series, (0, horizon), constant_values=np.nan)[rows], np.nan)


def to_micrograms(windows: WindowSet, change: np.ndarray, params: PreprocessingParams) -> np.ndarray:
    """Forecast changes (standardised model space) back to non-negative µg/m³."""
    model_space = (windows.last_value[:, None] + change) * params.target_std + params.target_mean
    return np.clip(target_inverse(model_space, params.target_transform), 0, None)


def stack_window_sets(sets: list[WindowSet]) -> WindowSet:
    """Several stations' samples as one set (inputs copied into one array, in the order given)."""
    return WindowSet(inputs=np.concatenate([item.inputs for item in sets]),
                     targets=np.concatenate([item.targets for item in sets]),
                     last_value=np.concatenate([item.last_value for item in sets]),
                     origin_index=np.concatenate([item.origin_index for item in sets]),
                     future=None if sets[0].future is None else np.concatenate([item.future for item in sets]))


def build_window_plan(features_path: Path, params_path: Path, lookback: int, horizon: int, output_path: Path) -> Path:
    """Plan the windows of each span the features table has (a backtest's retraining has no test span) and save
    the plan as JSON."""
    features = pd.read_parquet(features_path, columns=["split"])
    params = storage.read_json(params_path)
    plan = plan_windows(features["split"].to_numpy(), lookback, horizon, params["feature_columns"],
                        tuple(name for name in SPLITS if name in params["splits"]))
    return storage.write_json(output_path, plan.to_json())


@task(cache_policy=NO_CACHE, name="windows", task_run_name="windows {lookback}h→{horizon}h")
def windows_task(features_path: Path, params_path: Path, lookback: int, horizon: int, output_path: Path) -> Path:
    return build_window_plan(features_path, params_path, lookback, horizon, output_path)
