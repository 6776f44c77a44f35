"""What TensorFlow's op determinism costs: the default model trained on the embassy file's features with and
without it, each twice, each in its own process; wall seconds of training and a digest of the weights.

    .venv/bin/python benchmarks/determinism.py --home PM25_HOME   # a home where `pm25 run` ran on the embassy file

Writes reports/bench/determinism.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))


def station_features(home: Path) -> tuple[str, Path, Path]:
    """What a single-station home trains on: its station, the features folder that holds a window plan, the plan."""
    features = next(path.parent for path in (home / "data" / "features").glob("*/features.parquet")
                    if any(path.parent.glob("windows_*.json")))
    station = json.loads(next((home / "data" / "dataset").glob("*/dataset.json")).read_text())["stations"][0]
    return station, features, next(features.glob("windows_*.json"))


def weights_digest(model_dir: Path) -> str:
    """A short digest of a saved model's weights: equal digests, the same weights to the bit."""
    import keras

    weights = keras.saving.load_model(model_dir / "model.keras", compile=False).get_weights()
    return hashlib.sha256(b"".join(array.tobytes() for array in weights)).hexdigest()[:16]


def train_once(home: Path, deterministic: bool) -> dict:
    """Train the default model on the home's features into a fresh folder; in this process."""
    import tensorflow as tf

    from tasks.core.settings import Settings
    from tasks.model.train import TrainingInputs, train_model

    station, features, plan = station_features(home)
    with mock.patch.object(tf.config.experimental, "enable_op_determinism",
                           tf.config.experimental.enable_op_determinism if deterministic else lambda: None):
        model_dir = Path(tempfile.mkdtemp(prefix="pm25-determinism-"))
        inputs = TrainingInputs({station: features / "features.parquet"}, {station: features / "preprocessing.json"},
                                plan)
        trained = train_model(inputs, model_dir, Settings().training)
    return {"deterministic": deterministic, "epochs": trained.epochs_run, "seconds": round(trained.seconds, 1),
            "weights_sha256": weights_digest(model_dir)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", required=True, type=Path)
    parser.add_argument("--one", choices=["on", "off"], help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.one:
        print(json.dumps(train_once(arguments.home, arguments.one == "on")))
        return 0
    rows = []
    for mode in ("on", "off", "on", "off"):
        done = subprocess.run([sys.executable, __file__, "--home", str(arguments.home), "--one", mode], check=True,
                              stdout=subprocess.PIPE, text=True)
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
    from tasks.core import storage

    storage.write_json(PROJECT_ROOT / "reports" / "bench" / "determinism.json",
                       {"measured_at": time.strftime("%Y-%m-%d %H:%M"), "runs": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
