"""`make network-sweep`: choose the network model's inputs and settings on the validation span only.

Needs a home where `pm25 run` has run on a folder of station files (its features are reused). For each
candidate it trains the network model alone (the station models and baselines do not depend on it), with
what every station shares, which of a station's own inputs it reads, its look-back, a training setting or a
regulariser (Gaussian noise on the inputs, weight decay) changed, without the station one-hot, with 24-hour
changes of some inputs added, or with the training batches reshuffled every epoch, and scores it on the
validation span: RMSE pooled over the stations as a share of persistence's at 1, 6 and 24 h. The seed is
PM25_SEED's (42 by default); each seed keeps its own trained candidates. Writes reports/sweep/network_sweep.json and .md. The test span is never read.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

from benchmarks.benchmark import write_outputs  # noqa: E402
from tasks.core import storage  # noqa: E402
from tasks.core.home import PREPROCESSING_DIR, WINDOWS_FILE  # noqa: E402
from tasks.core.settings import Settings, TrainingSettings  # noqa: E402
from tasks.model.baselines import persistence  # noqa: E402
from tasks.model.network_inputs import NetworkSpec  # noqa: E402
from tasks.model.predict import model_forecasts  # noqa: E402
from tasks.model.windows import observed_targets  # noqa: E402
from tasks.model.train import (  # noqa: E402
    DEFAULT_RECIPE,
    STEPS_PER_EXECUTION,
    ModelRecipe,
    TrainingInputs,
    build_model,
    gathered_batches,
    train_model,
    training_batches,
)
from tasks.model.windows import WindowPlan, make_window_set  # noqa: E402
from tasks.operate.registry import champion  # noqa: E402

OUTPUT_DIR = PROJECT_ROOT / "reports" / "sweep"
HORIZONS = (1, 6, 24)
PM25_ONLY = ["pm25_z", "pm25_change_1h"]
WEATHER_CHANGES = [*PM25_ONLY, "dewp_change_3h", "pres_change_3h", "wind_speed"]
# name -> what every station shares, own-input prefixes dropped, the look-back and training settings changed.
CANDIDATES = {
    "PM2.5 and its change shared": {"shared": PM25_ONLY},
    "… learning rate 0.002": {"shared": PM25_ONLY, "settings": {"learning_rate": 0.002}},
    "… learning rate 0.001": {"shared": PM25_ONLY, "settings": {"learning_rate": 0.001}},
    "… loss weight h^-1": {"shared": PM25_ONLY, "settings": {"horizon_weight_power": 1.0}},
    "… dropout 0.3": {"shared": PM25_ONLY, "settings": {"dropout": 0.3}},
    "… without the other pollutants as inputs": {"shared": PM25_ONLY, "drop": ["pm10", "so2", "no2", "co", "o3"]},
    "… without the wind directions as inputs": {"shared": PM25_ONLY, "drop": ["wind_dir_"]},
    "… and each station's 24-hour mean shared": {"shared": [*PM25_ONLY, "pm25_mean_24h"]},
    "dew-point and pressure changes and wind speed shared too": {"shared": WEATHER_CHANGES},
    "… and dew point, pressure and temperature": {"shared": [*WEATHER_CHANGES, "dewp", "pres", "temp"]},
    "… and CO and NO2": {"shared": [*WEATHER_CHANGES, "co", "no2"]},
    "weather changes shared, learning rate 0.002": {"shared": WEATHER_CHANGES, "settings": {"learning_rate": 0.002}},
    "weather changes shared, 3 ensemble members": {"shared": WEATHER_CHANGES, "settings": {"ensemble_size": 3}},
    "weather changes shared, 128 units": {"shared": WEATHER_CHANGES, "settings": {"lstm_units": 128}},
    "weather changes and ozone shared": {"shared": [*WEATHER_CHANGES, "o3"]},
    "weather changes and PM10 shared": {"shared": [*WEATHER_CHANGES, "pm10"]},
    "weather changes and rain shared": {"shared": [*WEATHER_CHANGES, "rain"]},
    "weather changes shared, 64 units": {"shared": WEATHER_CHANGES, "settings": {"lstm_units": 64}},
    "weather changes shared, dropout 0.35": {"shared": WEATHER_CHANGES, "settings": {"dropout": 0.35}},
    "weather changes shared, batches of 1024": {"shared": WEATHER_CHANGES, "settings": {"batch_size": 1024}},
    "weather changes shared, 12-hour look-back": {"shared": WEATHER_CHANGES, "lookback": 12},
    "weather changes shared, 24-hour look-back": {"shared": WEATHER_CHANGES, "lookback": 24},
    "weather changes shared, every horizon weighed alike": {"shared": WEATHER_CHANGES,
                                                            "settings": {"horizon_weight_power": 0.0}},
    "weather changes shared, loss weight h^-0.75": {"shared": WEATHER_CHANGES,
                                                    "settings": {"horizon_weight_power": 0.75}},
    "weather changes shared, without the day of the year": {"shared": WEATHER_CHANGES, "drop": ["doy_"]},
    "weather changes shared, without the day of the year, loss weight h^-0.75": {
        "shared": WEATHER_CHANGES, "drop": ["doy_"], "settings": {"horizon_weight_power": 0.75}},
    "weather changes shared, without the day of the year, 12-hour look-back": {
        "shared": WEATHER_CHANGES, "drop": ["doy_"], "lookback": 12},
    "weather changes shared, Gaussian noise 0.1 on the inputs": {"shared": WEATHER_CHANGES, "input_noise": 0.1},
    "weather changes shared, weight decay 0.01": {"shared": WEATHER_CHANGES, "weight_decay": 0.01},
    "weather changes shared, without the station one-hot": {"shared": WEATHER_CHANGES, "station_one_hot": False},
    "weather changes shared, own 24-hour changes of pressure, dew point and temperature": {
        "shared": WEATHER_CHANGES, "changes_24h": ["pres", "dewp", "temp"]},
    "weather changes and the 24-hour pressure change shared": {
        "shared": [*WEATHER_CHANGES, "pres_change_24h"], "changes_24h": ["pres"]},
    "weather changes shared, loss weight h^-2": {"shared": WEATHER_CHANGES, "settings": {"horizon_weight_power": 2.0}},
    "weather changes shared, weight averaging 0.998": {"shared": WEATHER_CHANGES, "settings": {"weight_averaging": 0.998}},
    "weather changes shared, 2 LSTM layers": {"shared": WEATHER_CHANGES, "settings": {"lstm_layers": 2}},
    "weather changes shared, batches of 128": {"shared": WEATHER_CHANGES, "settings": {"batch_size": 128}},
    "weather changes shared, reshuffled every epoch": {"shared": WEATHER_CHANGES, "reshuffle": True},
}


def network_inputs(home: Path) -> TrainingInputs:
    """The champion network's stations, each one's features and preprocessing, and the window plan."""
    model_dir = home / "models" / champion(home / "models").model_dir
    stations = NetworkSpec.load(model_dir).stations
    fitted = {station: (model_dir / PREPROCESSING_DIR / f"{station}.json").read_bytes() for station in stations}
    folders = [path.parent for path in (home / "data" / "features").glob("*/preprocessing.json")]
    by_station = {station: next(folder for folder in folders if (folder / "preprocessing.json").read_bytes() == content)
                  for station, content in fitted.items()}
    plan = next(path for folder in by_station.values() for path in folder.glob("windows_*.json"))
    return TrainingInputs({station: folder / "features.parquet" for station, folder in by_station.items()},
                          {station: folder / "preprocessing.json" for station, folder in by_station.items()}, plan)


def regularised_build(input_noise: float, weight_decay: float):
    """`build_model` whose training model adds Gaussian noise to its inputs and decays its weights (the
    forecasting model, which shares the layers, is unchanged)."""
    import keras

    def build(lookback: int, n_features: int, horizon: int, training_settings: TrainingSettings):
        training, forecasting = build_model(lookback, n_features, horizon, training_settings)
        inputs = keras.Input(shape=(lookback, n_features), name="history")
        noisy = keras.layers.GaussianNoise(input_noise)(inputs) if input_noise else inputs
        wrapped = keras.Model(inputs, training(noisy), name="regularised")
        momentum = training_settings.weight_averaging
        averaging = {"use_ema": True, "ema_momentum": momentum} if momentum else {}
        wrapped.compile(optimizer=keras.optimizers.Adam(training_settings.learning_rate,
                                                        weight_decay=weight_decay or None, **averaging),
                        loss=training.loss, steps_per_execution=STEPS_PER_EXECUTION)
        return wrapped, forecasting

    return build


def reshuffled_batches(inputs: np.ndarray, targets: np.ndarray, batch_size: int, shuffle: bool):
    """`training_batches` that draws a new permutation at every pass, so each epoch sees other batches (the
    project's, like Keras's pipeline for arrays with a seed set, draws the same one every epoch)."""
    import tensorflow as tf

    if not shuffle:
        return training_batches(inputs, targets, batch_size, shuffle)
    samples = len(inputs)
    indices = tf.data.Dataset.range(samples).shuffle(samples, reshuffle_each_iteration=True).batch(batch_size)
    return gathered_batches(indices, inputs, targets, -(-samples // batch_size))


def candidate_recipe(candidate: dict) -> ModelRecipe:
    """The model a candidate tries: what every station shares, the station one-hot, a regularised build and
    batches drawn anew every epoch, where it says so; the project's model otherwise."""
    regularised = candidate.get("input_noise") or candidate.get("weight_decay")
    return replace(DEFAULT_RECIPE, shared_features=tuple(candidate["shared"]),
                   station_one_hot=candidate.get("station_one_hot", True),
                   build=(regularised_build(candidate.get("input_noise", 0.0), candidate.get("weight_decay", 0.0))
                          if regularised else build_model),
                   batches=reshuffled_batches if candidate.get("reshuffle") else training_batches)


def with_day_changes(feature_paths: dict[str, Path], plan_path: Path, columns: list[str],
                     work: Path) -> tuple[dict[str, Path], Path]:
    """Copies of the stations' features and the window plan with `<column>_change_24h` (from the past only)."""
    folder = work / f"features-{storage.fingerprint(columns)}"
    paths = {}
    for station, path in feature_paths.items():
        frame = pd.read_parquet(path)
        for column in columns:
            frame[f"{column}_change_24h"] = frame[column].diff(24).fillna(0.0).astype("float32")
        paths[station] = storage.write_parquet(folder / f"{station}.parquet", frame)
    plan = storage.read_json(plan_path)
    plan["feature_columns"] = [*plan["feature_columns"], *(f"{column}_change_24h" for column in columns)]
    return paths, storage.write_json(folder / "plan.json", plan)


def validation_ratios(model_dir: Path, feature_paths: dict[str, Path]) -> dict[str, float]:
    """Pooled validation RMSE over persistence's at HORIZONS, on observed targets from observed origins."""
    features = {station: pd.read_parquet(path) for station, path in feature_paths.items()}
    plan = WindowPlan.from_json(storage.read_json(model_dir / WINDOWS_FILE))
    errors = {h: ([], []) for h in HORIZONS}
    for station, own in features.items():
        series = own["target"].to_numpy("float64")
        windows = make_window_set(own, plan, "validation")
        observed = observed_targets(series, windows)
        forecast = model_forecasts(model_dir, features, plan, station, ("validation",))["validation"]
        naive = persistence(series, windows.origin_index, plan.horizon)
        scored = np.isfinite(observed) & np.isfinite(series[windows.origin_index])[:, None]
        for h, (model, baseline) in errors.items():
            cells = scored[:, h - 1]
            model.append(forecast[cells, h - 1] - observed[cells, h - 1])
            baseline.append(naive[cells, h - 1] - observed[cells, h - 1])
    rmse = lambda parts: np.sqrt(np.mean(np.concatenate(parts) ** 2))  # noqa: E731
    return {f"h{h}": round(float(rmse(model) / rmse(baseline)), 4) for h, (model, baseline) in errors.items()}


def run_candidate(name: str, home: Path, work: Path) -> dict:
    candidate = CANDIDATES[name]
    inputs = network_inputs(home)
    feature_paths, plan_path = inputs.feature_paths, inputs.plan_path
    if candidate.get("changes_24h"):
        feature_paths, plan_path = with_day_changes(feature_paths, plan_path, candidate["changes_24h"], work)
    if candidate.get("drop") or candidate.get("lookback"):
        plan = storage.read_json(plan_path)
        plan["feature_columns"] = [column for column in plan["feature_columns"]
                                   if not column.startswith(tuple(candidate.get("drop", ())))]
        if candidate.get("lookback"):  # the first origin of a span needs a whole look-back before it
            plan["lookback"] = candidate["lookback"]
            plan["origins"] = {span: [max(first, plan["lookback"] - 1), stop]
                               for span, (first, stop) in plan["origins"].items()}
        plan_path = storage.write_json(work / f"plan-{storage.fingerprint(name)}.json", plan)
    config = Settings(**candidate.get("settings", {})).training
    model_dir = work / storage.fingerprint(name)
    trained = train_model(TrainingInputs(feature_paths, inputs.params_paths, plan_path), model_dir, config,
                          recipe=candidate_recipe(candidate))
    return {**validation_ratios(model_dir, feature_paths), "epochs": trained.epochs_run, "best_epoch": trained.best_epoch,
            "train_seconds": round(trained.seconds, 1)}


def markdown(report: dict) -> str:
    lines = [f"# Network validation sweep ({report['date']}, {report['machine']})", "",
             f"Network model alone, seed {report['seed']}, stations {', '.join(report['stations'])}; pooled validation "
             "RMSE as a share of persistence's (lower is better). The test span is not read.", "",
             "| candidate | 1 h | 6 h | 24 h | epochs (best) | train s |", "|---|---|---|---|---|---|"]
    for name, row in report["results"].items():
        lines.append(f"| {name} | {row['h1']:.4f} | {row['h6']:.4f} | {row['h24']:.4f} | {row['epochs']} "
                     f"({row['best_epoch']}) | {row['train_seconds']} |")
    return "\n".join([*lines, ""])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", required=True, type=Path, help="a PM25_HOME where `pm25 run` ran on station files")
    parser.add_argument("--candidates", nargs="+", choices=list(CANDIDATES), default=list(CANDIDATES))
    arguments = parser.parse_args()
    work = arguments.home / "network_sweep" / f"seed-{Settings().seed}"  # PM25_SEED: a candidate's model per seed
    work.mkdir(parents=True, exist_ok=True)
    results = {}
    for name in arguments.candidates:
        results[name] = run_candidate(name, arguments.home, work)
        print(name, results[name], flush=True)
    report = {"date": time.strftime("%Y-%m-%d"), "machine": f"{os.cpu_count()} CPU cores, no GPU",
              "seed": Settings().seed, "stations": list(network_inputs(arguments.home).feature_paths), "results": results}
    write_outputs(OUTPUT_DIR, "network_sweep", report, markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
