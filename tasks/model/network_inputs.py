"""The network's model inputs: each station's own features, and, when the model covers several stations,
every station's recent PM2.5 and weather changes (PM2.5 reaches a station from its upwind neighbours hours
later, and the air that clears it reaches the outer stations first) and a one-hot of which station a sample
belongs to, so one model serves them all.

A model of one station reads its own features only, so the network model of a one-station data set is the
single-station model itself.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from tasks.core import storage
from tasks.core.home import NETWORK_FILE, PREPROCESSING_DIR
from tasks.model.inputs import PM25_INPUT, PreprocessingParams, load_params
from tasks.model.windows import WindowPlan, WindowSet, make_window_set, stack_window_sets

# What a station reads of every station of the network, at each hour of its look-back, where the stations'
# features have it: PM2.5 and its last change, the 3-hour changes of dew point and pressure and the wind
# speed (chosen on the validation span; see docs/station-network.md).
SHARED_FEATURES = (PM25_INPUT, "pm25_change_1h", "dewp_change_3h", "pres_change_3h", "wind_speed")


@dataclass(frozen=True)
class NetworkSpec:
    """The stations a model covers, in the order of its inputs, what it reads of every station (nothing beyond a
    station's own features when it covers one), and whether it reads which station a sample is from."""

    stations: list[str]
    shared_features: list[str]
    station_one_hot: bool = True

    @property
    def network_inputs(self) -> bool:
        return bool(self.shared_features)

    @classmethod
    def of(cls, stations: list[str], feature_columns: list[str], shared_features: tuple[str, ...] = SHARED_FEATURES,
           station_one_hot: bool = True) -> NetworkSpec:
        shared = [name for name in shared_features if name in feature_columns] if len(stations) > 1 else []
        return cls(sorted(stations), shared, station_one_hot)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def load(cls, model_dir: Path) -> NetworkSpec:
        return cls(**storage.read_json(model_dir / NETWORK_FILE))


def input_names(spec: NetworkSpec, feature_columns: list[str]) -> list[str]:
    """The model's input columns, for logs and reports."""
    if not spec.network_inputs:
        return list(feature_columns)
    shared = [f"{station}:{name}" for station in spec.stations for name in spec.shared_features]
    return [*feature_columns, *shared, *(f"is_{station}" for station in spec.stations if spec.station_one_hot)]


def station_inputs(features: dict[str, pd.DataFrame], spec: NetworkSpec, feature_columns: list[str]) -> dict[str, np.ndarray]:
    """Per station, its model inputs at every hour (hours × inputs, float32); the stations share their hours."""
    own = {station: features[station][feature_columns].to_numpy(dtype="float32") for station in spec.stations}
    if not spec.network_inputs:
        return own
    shared = np.concatenate([features[station][spec.shared_features].to_numpy(dtype="float32")
                             for station in spec.stations], axis=1)
    hours = len(shared)
    result = {}
    for position, station in enumerate(spec.stations):
        which = np.zeros((hours, len(spec.stations) if spec.station_one_hot else 0), dtype="float32")
        which[:, position:position + 1] = 1.0
        result[station] = np.concatenate([own[station], shared, which], axis=1)
    return result


def network_window_sets(features: dict[str, pd.DataFrame], spec: NetworkSpec, plan: WindowPlan,
                        span: str) -> dict[str, WindowSet]:
    """Each station's samples of `span`, with the model's inputs."""
    inputs = station_inputs(features, spec, plan.feature_columns)
    return {station: make_window_set(features[station], plan, span, inputs[station]) for station in spec.stations}


def station_window_set(features: dict[str, pd.DataFrame], spec: NetworkSpec, plan: WindowPlan, span: str,
                       station: str) -> WindowSet:
    """One station's samples of `span`, with the inputs of a model covering `spec`'s stations."""
    return make_window_set(features[station], plan, span, station_inputs(features, spec, plan.feature_columns)[station])


def stacked_span(features: dict[str, pd.DataFrame], spec: NetworkSpec, plan: WindowPlan, span: str) -> WindowSet:
    """Every station's samples of `span` as one training set."""
    return stack_window_sets(list(network_window_sets(features, spec, plan, span).values()))


def save_network(model_dir: Path, spec: NetworkSpec, params_paths: dict[str, Path]) -> None:
    """The stations and each station's fitted preprocessing, beside the model, so the folder is self-contained."""
    for station in spec.stations:
        storage.write_bytes(model_dir / PREPROCESSING_DIR / f"{station}.json", params_paths[station].read_bytes())
    storage.write_json(model_dir / NETWORK_FILE, spec.to_json())


def load_station_params(model_dir: Path) -> dict[str, PreprocessingParams]:
    spec = NetworkSpec.load(model_dir)
    return {station: load_params(model_dir / PREPROCESSING_DIR / f"{station}.json") for station in spec.stations}
