"""What two Dask workers on this machine can gain: one training alone against two side by side, with Keras's own
input pipeline for arrays and with the project's (`tasks.model.train.training_batches`: the same batches, drawn in the
thread that asks for them).

Each training is the default model on the embassy file's features, a fixed number of epochs (no early stopping),
in its own process with TensorFlow's threads set as on a single-threaded Dask worker. Reported per training: the
seconds of `fit`, the CPU seconds of its process and a digest of the trained weights (the same for both pipelines
if they draw the same batches); per row, the share of the machine's CPU time left idle while it ran (/proc/stat).

    .venv/bin/python benchmarks/paired_training.py --home PM25_HOME   # a home where `pm25 run` ran on the embassy file

Writes reports/bench/paired_training.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from unittest import mock

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

PIPELINES = ("keras", "in-thread")


def keras_batches(inputs, targets, batch_size: int, shuffle: bool):
    """Keras's own pipeline for arrays (what `fit` builds when given arrays, Keras 3.15's ArrayDataAdapter) restated in
    public tf.data: the same batches as `training_batches`, gathered by a parallel map on tf.data's threads and
    prefetched."""
    import tensorflow as tf

    from tasks.model.train import batch_indices

    samples = len(inputs)
    indices = batch_indices(samples, batch_size, shuffle).prefetch(1)
    arrays = tf.data.Dataset.from_tensors((tf.constant(inputs), tf.constant(targets))).repeat()
    dataset = tf.data.Dataset.zip((indices, arrays)).map(
        lambda batch, data: (tf.gather(data[0], batch, axis=0), tf.gather(data[1], batch, axis=0)),
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return dataset.apply(tf.data.experimental.assert_cardinality(-(-samples // batch_size))).prefetch(tf.data.AUTOTUNE)


def train_once(home: Path, pipeline: str, epochs: int) -> dict:
    """Train in this process, as on a single-threaded Dask worker, and time it."""
    import tasks.model.train
    from benchmarks.determinism import station_features, weights_digest
    from tasks.core.settings import Settings
    from tasks.model.train import DEFAULT_RECIPE, TrainingInputs

    station, features, plan = station_features(home)
    model_dir = Path(tempfile.mkdtemp(prefix="pm25-paired-"))
    batches = keras_batches if pipeline == "keras" else tasks.model.train.training_batches
    # One thread, as on a single-threaded Dask worker.
    with mock.patch.object(tasks.model.train, "task_cores", lambda: 1):
        started = resource.getrusage(resource.RUSAGE_SELF)
        trained = tasks.model.train.train_model(
            TrainingInputs({station: features / "features.parquet"}, {station: features / "preprocessing.json"}, plan),
            model_dir, Settings(max_epochs=epochs, patience=epochs).training,
            recipe=replace(DEFAULT_RECIPE, batches=batches))
        ended = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (ended.ru_utime - started.ru_utime) + (ended.ru_stime - started.ru_stime)
    return {"pipeline": pipeline, "epochs": trained.epochs_run, "fit_seconds": round(trained.seconds, 1),
            "cpu_seconds": round(cpu, 1), "weights_sha256": weights_digest(model_dir)}


def cpu_ticks() -> tuple[int, int]:
    """Idle and total CPU time of the machine so far, in clock ticks (/proc/stat's first line)."""
    values = [int(value) for value in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return values[3] + values[4], sum(values)


def trainings(home: Path, pipeline: str, epochs: int, side_by_side: int) -> dict:
    """`side_by_side` trainings started at once, each in its own process."""
    command = [sys.executable, __file__, "--home", str(home), "--epochs", str(epochs), "--one", pipeline]

    def run(_: int) -> dict:
        done = subprocess.run(command, check=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        return json.loads(done.stdout.strip().splitlines()[-1])

    idle_before, total_before = cpu_ticks()
    with ThreadPoolExecutor(side_by_side) as pool:
        runs = list(pool.map(run, range(side_by_side)))
    idle_after, total_after = cpu_ticks()
    return {"pipeline": pipeline, "side_by_side": side_by_side, "runs": runs,
            "idle_share": round((idle_after - idle_before) / (total_after - total_before), 3)}


def markdown(report: dict) -> str:
    lines = [f"# One training alone and two side by side ({report['measured_at']}, {report['machine']})", "",
             f"The default model on the embassy features, {report['epochs']} epochs, TensorFlow's threads as on a "
             "single-threaded Dask worker; each training in its own process.", "",
             "| input pipeline | trainings at once | fit s (each) | CPU s (each) | CPU idle | slowdown against alone | weights |",
             "|---|---|---|---|---|---|---|"]
    alone = {row["pipeline"]: row["runs"][0]["fit_seconds"] for row in report["rows"] if row["side_by_side"] == 1}
    for row in report["rows"]:
        fits = [run["fit_seconds"] for run in row["runs"]]
        slowdown = sum(fits) / len(fits) / alone[row["pipeline"]]
        lines.append(f"| {row['pipeline']} | {row['side_by_side']} | {' / '.join(map(str, fits))} | "
                     f"{' / '.join(str(run['cpu_seconds']) for run in row['runs'])} | {row['idle_share']:.3f} | "
                     f"{slowdown:.2f} | {' / '.join(run['weights_sha256'] for run in row['runs'])} |")
    return "\n".join([*lines, ""])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", required=True, type=Path)
    parser.add_argument("--epochs", type=int, default=16)
    parser.add_argument("--one", choices=PIPELINES, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.one:
        print(json.dumps(train_once(arguments.home, arguments.one, arguments.epochs)))
        return 0
    rows = []
    for pipeline in PIPELINES:
        for side_by_side in (1, 2):
            rows.append(trainings(arguments.home, pipeline, arguments.epochs, side_by_side))
            print(rows[-1], flush=True)
    from benchmarks.benchmark import write_outputs

    report = {"measured_at": time.strftime("%Y-%m-%d %H:%M"), "machine": f"{os.cpu_count()} CPU cores, no GPU",
              "epochs": arguments.epochs, "rows": rows}
    write_outputs(PROJECT_ROOT / "reports" / "bench", "paired_training", report, markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
