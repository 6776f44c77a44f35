"""`make bench`: the seed recipe beside the project's default run, on this machine, in one invocation.

Writes reports/bench/bench.json and bench.md:
- the seed recipe as published (4 weather inputs, target mean-filled, a scaler fitted on all rows, two
  LSTM(50), batch 32, patience 10, an 80/20 split of the years before the test year, a Python loop for
  windows), with wall time, seconds per epoch, peak memory and RMSE;
- the project's default `pm25 run` (fresh PM25_HOME; Prefect's database created beforehand, a one-time
  step of any Prefect install that is timed on its own), and a second run on unchanged data and settings, each
  on Prefect's own temporary server for the command; the same pair against a server started beforehand with
  `prefect server start` (PREFECT_API_URL set);
- an ablation ladder from the seed recipe to the project's recipe, one change per step, then the default
  run with one of its model choices undone at a time (leave-one-out, same data and features);
- window building: the seed's Python loop against the project's strided view;
- the network: a default `pm25 run` on every station file of the multi-site folder, with the thread task runner
  and with a temporary local Dask cluster of one single-threaded worker per core, each on a fresh home, with
  wall time and the peak memory of the whole process tree (the Dask workers included).

`--only network` runs the network rows alone (into bench_network.json / .md); `--only backtest` the backtest rows
(benchmarks/backtest_rows.py; `--backtests` picks some of them) into bench_backtest.json / .md.

Every model is scored on the 2014 test year's observed hours, from origins with an observed reading.
Each step runs in its own process, so its peak memory (ru_maxrss from wait4) is its own.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

from benchmarks.backtest_rows import ROWS, backtest_markdown, backtest_rows  # noqa: E402
from tasks.core import storage  # noqa: E402
from tasks.core.settings import MIN_TRAIN_DAYS, TEST_DAYS, VALIDATION_DAYS, Settings  # noqa: E402

OUTPUT_DIR = PROJECT_ROOT / "reports" / "bench"
HOURS = 24
LOOKBACK = 24
WEATHER_4 = ["DEWP", "TEMP", "PRES", "Iws"]
WEATHER_4_CANONICAL = ["dewp", "temp", "pres", "wind_run"]  # the same four, as the features table names them
MULTISITE = PROJECT_ROOT.parent / "shared" / "data" / "beijing-multisite"
SAMPLE_SECONDS = 0.5
REPORTED = (1, 3, 6, 12, 24)

# Ablation steps between the seed recipe and the project's model (1-hour models with the seed's network).
LADDER = {
    "seed recipe (as published; TensorFlow's default threading)": "seed",
    "+ TensorFlow threads set for the cores (one op at a time, all cores per op)": "seed_threaded",
    "+ honest data: time split, train-only scaling, missing targets masked not mean-filled": "honest",
    "+ past PM2.5 (and its observed flag) as input": "past_pm25",
    "+ all project features (wind, precipitation, calendar, PM2.5 log/changes/means, weather changes)": "all_features",
}
DEFAULT_ROW = ("project default (`pm25 run`: 24 horizons, change target, ensemble of 2 × LSTM(96), origin-hour path, "
               "loss weight h^-1.5, averaged weights)")
# The default run with one model choice undone: `pm25 run` flags, on the bench's home (features cached).
LEAVE_ONE_OUT = {
    "default, but one network (no ensemble)": ["--ensemble-size", "1"],
    "default, but 64 units": ["--lstm-units", "64"],
    "default, but loss weight h^-1": ["--horizon-weight-power", "1.0"],
    "default, but all horizons weighed alike in the loss": ["--horizon-weight-power", "0"],
    "default, but the trained weights, not their average": ["--weight-averaging", "0"],
    "default, but a 24-hour look-back": ["--lookback-hours", "24"],
    "earlier default (64 units, loss weight h^-1, no weight averaging)": ["--lstm-units", "64", "--horizon-weight-power",
                                                                         "1.0", "--weight-averaging", "0"],
}


def run_measured(arguments: list[str], env: dict[str, str] | None = None) -> dict:
    """Run a child process; return its JSON output with wall seconds and its own peak memory."""
    started = time.perf_counter()
    process = subprocess.Popen(arguments, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, text=True)
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"{arguments} failed with {process.returncode}")
    result = json.loads(output[output.index("{"):]) if "{" in output else {}
    return {**result, "wall_seconds": round(time.perf_counter() - started, 1), "peak_rss_mb": round(usage.ru_maxrss / 1024)}


# ---------------------------------------------------------------- one ablation step, in a child process


def seed_windows(values: np.ndarray, lookback: int) -> np.ndarray:
    """The seed recipe's window loop: one copied slice per sample."""
    return np.array([values[i - lookback + 1 : i + 1] for i in range(lookback - 1, len(values))])


def scored_rmse(observed: np.ndarray, forecast: np.ndarray, origin_observed: np.ndarray) -> dict[str, float | None]:
    out = {}
    for h in REPORTED:
        if h > forecast.shape[1]:
            out[f"h{h}"] = None
            continue
        cells = np.isfinite(observed[:, h - 1]) & origin_observed
        out[f"h{h}"] = round(float(np.sqrt(np.mean((forecast[cells, h - 1] - observed[cells, h - 1]) ** 2))), 2)
    return out


def step(name: str, raw_path: Path, features_path: Path, seed: int) -> dict:
    from tasks.model.train import configure_tensorflow, masked_mse

    if name == "seed":
        import keras

        keras.utils.set_random_seed(seed)  # and TensorFlow's default threading, as published
    else:
        configure_tensorflow(seed)
        import keras

    features = pd.read_parquet(features_path)
    series = features["target"].to_numpy("float64")
    n = len(features)
    test_start = n - TEST_DAYS * HOURS
    if name in ("seed", "seed_threaded"):
        weather = pd.read_parquet(raw_path).set_index("timestamp")[WEATHER_4].reindex(features["timestamp"]).ffill().bfill()
        target = pd.Series(series).fillna(np.nanmean(series)).to_numpy()  # mean-filled over every year, test included
        table = np.column_stack([weather.to_numpy(), target])
        low, high = table.min(axis=0), table.max(axis=0)  # the scaler sees every row
        scaled = ((table - low) / (high - low)).astype("float32")
        started = time.perf_counter()
        inputs = seed_windows(scaled[:, :4], LOOKBACK)
        loop_seconds = time.perf_counter() - started
        origins = np.arange(LOOKBACK - 1, n)
        inputs, origins = inputs[:-1], origins[:-1]  # the last origin has no next hour
        next_hour = scaled[origins + 1, 4:5]
        before_test = origins + 1 < test_start
        fit_x, fit_y = inputs[before_test], next_hour[before_test]
        cut = int(len(fit_x) * 0.8)
        x, y, val = fit_x[:cut], fit_y[:cut], (fit_x[cut:], fit_y[cut:])
        test_x, test_origins = inputs[~before_test], origins[~before_test]
        unscale = lambda z: z * (high[4] - low[4]) + low[4]  # noqa: E731
        loss, batch, patience = "mse", 32, 10
    else:
        columns = {"honest": WEATHER_4_CANONICAL, "past_pm25": [*WEATHER_4_CANONICAL, "pm25_z", "pm25_observed"],
                   "all_features": None}[name]
        params = storage.read_json(features_path.parent / "preprocessing.json")
        columns = columns or params["feature_columns"]
        values = features[columns].to_numpy("float32")
        target_z = features["target_z"].to_numpy("float32")
        from tasks.model.windows import window_inputs

        inputs, origins = window_inputs(values, LOOKBACK), np.arange(LOOKBACK - 1, n)
        inputs, origins = inputs[:-1], origins[:-1]
        next_hour = target_z[origins + 1][:, None]
        split = features["split"].to_numpy()[origins + 1]
        x, y = np.ascontiguousarray(inputs[split == "train"]), next_hour[split == "train"]
        val = (np.ascontiguousarray(inputs[split == "validation"]), next_hour[split == "validation"])
        test_x, test_origins = np.ascontiguousarray(inputs[split == "test"]), origins[split == "test"]
        unscale = lambda z: z * params["target_std"] + params["target_mean"]  # noqa: E731
        loss, batch, patience, loop_seconds = masked_mse(np.ones(1)), 32, 10, None
    model = keras.Sequential([keras.Input(shape=x.shape[1:]), keras.layers.LSTM(50, return_sequences=True),
                              keras.layers.LSTM(50), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss=loss)
    started = time.perf_counter()
    history = model.fit(x, y, validation_data=val, epochs=100, batch_size=batch, verbose=0, shuffle=True,
                        callbacks=[keras.callbacks.EarlyStopping(patience=patience, restore_best_weights=True)])
    seconds = time.perf_counter() - started
    forecast = unscale(model.predict(test_x, batch_size=1024, verbose=0).astype("float64"))
    observed = np.where(np.arange(n)[test_origins + 1] >= test_start, series[test_origins + 1], np.nan)[:, None]
    epochs = len(history.history["loss"])
    return {"epochs": epochs, "seconds_per_epoch": round(seconds / epochs, 2), "train_seconds": round(seconds, 1),
            "rmse": scored_rmse(observed, forecast, np.isfinite(series[test_origins])), "window_loop_seconds": loop_seconds}


# ---------------------------------------------------------------- the whole benchmark


def window_speed(features_path: Path) -> dict:
    from tasks.model.windows import window_inputs

    table = pd.read_parquet(features_path)
    params = storage.read_json(features_path.parent / "preprocessing.json")
    values = table[params["feature_columns"]].to_numpy("float32")
    started = time.perf_counter()
    looped = seed_windows(values, LOOKBACK)
    loop = time.perf_counter() - started
    repeats = 1000
    started = time.perf_counter()
    for _ in range(repeats):
        viewed = window_inputs(values, LOOKBACK)
    view = (time.perf_counter() - started) / repeats
    assert np.array_equal(looped, viewed) and np.shares_memory(viewed, values)
    return {"windows": len(looped), "loop_seconds": round(loop, 4), "view_seconds": view,
            "speedup": round(loop / view), "view_copies_series": False}


def prefect_environment(prefect_home: Path) -> dict[str, str]:
    return {**os.environ, "PREFECT_HOME": str(prefect_home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "TF_CPP_MIN_LOG_LEVEL": "2"}


def create_prefect_database(prefect_home: Path) -> float:
    """Create Prefect's SQLite database under `prefect_home` (what the first command of any Prefect install
    does); return its wall seconds."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "prefect", "server", "database", "upgrade", "-y"], cwd=PROJECT_ROOT,
                   env=prefect_environment(prefect_home), check=True, capture_output=True)
    return round(time.perf_counter() - started, 1)


def pm25_run(home: Path, source: str, prefect_home: Path, *flags: str, api_url: str | None = None) -> dict:
    """`pm25 run`, as a user starts it: its own process, with Prefect's temporary server unless `api_url`
    names a running one."""
    env = prefect_environment(prefect_home) | ({"PREFECT_API_URL": api_url} if api_url else {})
    return run_measured([str(Path(sys.executable).parent / "pm25"), "run", "--json", "--source", source, "--home", str(home),
                         *flags], env)


def run_tree_sampled(arguments: list[str], env: dict[str, str]) -> dict:
    """Run a child process; return its JSON output with wall seconds and the peak of the summed memory (RSS) of
    it and all its descendants, sampled every SAMPLE_SECONDS (Dask's worker processes are descendants)."""
    import psutil

    started = time.perf_counter()
    process = subprocess.Popen(arguments, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, text=True)
    root, peak = psutil.Process(process.pid), 0
    output = []
    reader = threading.Thread(target=lambda: output.append(process.stdout.read()))
    reader.start()
    while process.poll() is None:
        total = 0
        for member in [root, *root.children(recursive=True)]:
            try:
                total += member.memory_info().rss
            except psutil.Error:
                pass  # ended between the listing and the reading
        peak = max(peak, total)
        time.sleep(SAMPLE_SECONDS)
    reader.join()
    if process.returncode != 0:
        raise RuntimeError(f"{arguments} failed with {process.returncode}")
    text = "".join(output)
    result = json.loads(text[text.index("{"):])
    return {**result, "wall_seconds": round(time.perf_counter() - started, 1), "peak_tree_mb": round(peak / 2**20)}


def network_runs(work: Path, source: Path) -> dict:
    """The default `pm25 run` on a folder of station files, with threads and with a local Dask cluster."""
    rows = {}
    for runner in ("threads", "dask"):
        env = prefect_environment(work / "prefect") | {"PM25_TASK_RUNNER": runner}
        run = run_tree_sampled([str(Path(sys.executable).parent / "pm25"), "run", "--json", "--source", str(source), "--home",
                                str(work / f"network_{runner}")], env)
        metrics = storage.read_json(Path(run["run_dir"]) / "metrics.json")
        rows[runner] = {"wall_seconds": run["wall_seconds"], "peak_tree_mb": run["peak_tree_mb"],
                        "stations": len(run["stations"]),
                        "rmse": {name: {f"h{h}": round(metrics["models"][name][f"h{h}"]["rmse"], 2) for h in REPORTED}
                                 for name in ("lstm", "lstm_wx_perfect", "lstm_wx_noisy", "lstm_station", "gbm", "ridge",
                                              "persistence")}}
        print(runner, rows[runner], flush=True)
    return rows


def network_markdown(rows: dict) -> str:
    lines = ["| task runner | stations | wall s | peak MB (process tree) | lstm RMSE 1 / 6 / 24 h | lstm_wx_perfect "
             "(upper bound) | lstm_wx_noisy |", "|---|---|---|---|---|---|---|"]
    for runner, row in rows.items():
        rmse = {name: " / ".join(str(row["rmse"][name][f"h{h}"]) for h in (1, 6, 24))
                for name in ("lstm", "lstm_wx_perfect", "lstm_wx_noisy")}
        name = {"threads": "threads (default)", "dask": f"local Dask cluster, {os.cpu_count()} workers × 1 thread"}[runner]
        lines.append(f"| {name} | {row['stations']} | {row['wall_seconds']} | {row['peak_tree_mb']} | {rmse['lstm']} | "
                     f"{rmse['lstm_wx_perfect']} | {rmse['lstm_wx_noisy']} |")
    return "\n".join(lines) + "\n"


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def running_server(prefect_home: Path) -> Iterator[str]:
    """`prefect server start` on `prefect_home` for the length of the `with` block; yields its API URL."""
    from pm25.serve import stop_process, wait_for_health

    port = free_loopback_port()
    server = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port",
                               str(port), "--no-ui"], cwd=PROJECT_ROOT, env=prefect_environment(prefect_home),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    api_url = f"http://127.0.0.1:{port}/api"
    try:
        wait_for_health(server, urllib.request.Request(f"{api_url}/health"), "prefect server", 120, poll_seconds=0.2)
        yield api_url
    finally:
        stop_process(server)


def runs_against_a_running_server(work: Path, source: str) -> tuple[dict, dict]:
    """A full and a second `pm25 run` with PREFECT_API_URL set to a server that is already up, as the
    nightly deployment's runs find it: no server start or stop inside the runs."""
    with running_server(work / "prefect") as api_url:
        full = pm25_run(work / "served_home", source, work / "prefect", api_url=api_url)
        second = pm25_run(work / "served_home", source, work / "prefect", api_url=api_url)
    return full, second


def write_outputs(folder: Path, stem: str, report: dict, text: str) -> None:
    """`stem`.json and `stem`.md into `folder`, and the Markdown on stdout."""
    storage.write_json(folder / f"{stem}.json", report)
    storage.write_text(folder / f"{stem}.md", text)
    print(text)


def lstm_row(run: dict) -> dict:
    """A ladder row from a `pm25 run`'s metrics and training summary."""
    metrics = storage.read_json(Path(run["run_dir"]) / "metrics.json")
    training = storage.read_json(Path(run["model"]).parent / "training.json")
    return {"wall_seconds": run["wall_seconds"], "peak_rss_mb": run["peak_rss_mb"], "epochs": training["epochs_run"],
            "seconds_per_epoch": round(training["seconds"] / training["epochs_run"], 2),
            "rmse": {f"h{h}": round(metrics["models"]["lstm"][f"h{h}"]["rmse"], 2) for h in REPORTED}}


def markdown(report: dict) -> str:
    machine = report["machine"]
    lines = [f"# Benchmark ({report['date']}, {machine})", "",
             "RMSE in µg/m³ on 2014's observed hours (origins with an observed reading).", "",
             "| recipe | wall s | s/epoch | epochs | peak MB | RMSE 1 h | RMSE 6 h | RMSE 24 h |", "|---|---|---|---|---|---|---|---|"]
    for name, row in report["ladder"].items():
        rmse = row["rmse"]
        lines.append(f"| {name} | {row['wall_seconds']} | {row['seconds_per_epoch']} | {row['epochs']} | {row['peak_rss_mb']} "
                     f"| {rmse['h1']} | {rmse['h6'] or '–'} | {rmse['h24'] or '–'} |")
    default, again, served = report["default_run"], report["second_run"], report["running_server"]
    lines += ["", f"Default `pm25 run`: {default['wall_seconds']} s wall ({default['wall_seconds'] / next(iter(report['ladder'].values()))['wall_seconds']:.2f} of the seed recipe's), "
              f"peak {default['peak_rss_mb']} MB; second run on unchanged data, each on Prefect's temporary server: "
              f"{again['wall_seconds']} s ({again['wall_seconds'] / default['wall_seconds']:.2f} of the first). "
              f"Creating Prefect's database, once per PREFECT_HOME before the first run: {report['prefect_database_seconds']} s.",
              f"Against an already running Prefect server (PREFECT_API_URL set): full run {served['full_run']['wall_seconds']} s, "
              f"second run {served['second_run']['wall_seconds']} s "
              f"({served['second_run']['wall_seconds'] / served['full_run']['wall_seconds']:.2f} of the full run).",
              f"Windows: the seed's loop builds {report['windows']['windows']} windows in {report['windows']['loop_seconds']} s; "
              f"the strided view takes {report['windows']['view_seconds'] * 1e6:.1f} µs ({report['windows']['speedup']}× faster, no copy).", ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--step", help=argparse.SUPPRESS)
    parser.add_argument("--raw", help=argparse.SUPPRESS)
    parser.add_argument("--features", help=argparse.SUPPRESS)
    parser.add_argument("--source", default=os.environ.get("PM25_SOURCE", Settings().source))
    parser.add_argument("--seed", type=int, default=Settings().seed)
    parser.add_argument("--network-source", default=str(MULTISITE), help="folder of station files for the network rows")
    parser.add_argument("--only", choices=["network", "backtest"], help="run only these rows")
    parser.add_argument("--backtests", default=",".join(ROWS), help=f"backtest rows to run, of {', '.join(ROWS)}")
    arguments = parser.parse_args()
    if arguments.step:
        print(json.dumps(step(arguments.step, Path(arguments.raw), Path(arguments.features), arguments.seed)))
        return 0

    work = Path(tempfile.mkdtemp(prefix="pm25-bench-"))
    database_seconds = create_prefect_database(work / "prefect")
    backtest_env = prefect_environment(work / "prefect")
    if arguments.only == "backtest":
        report = backtest_rows(work, arguments.source, backtest_env, arguments.backtests.split(","),
                               OUTPUT_DIR / "bench_backtest.json")
        storage.write_text(OUTPUT_DIR / "bench_backtest.md", backtest_markdown(report))
        print(backtest_markdown(report))
        return 0
    network = network_runs(work, Path(arguments.network_source))
    if arguments.only == "network":
        report = {"date": time.strftime("%Y-%m-%d"), "machine": f"{os.cpu_count()} CPU cores, no GPU", "network": network}
        write_outputs(OUTPUT_DIR, "bench_network", report, network_markdown(network))
        return 0
    default = pm25_run(work / "home", arguments.source, work / "prefect")
    second = pm25_run(work / "home", arguments.source, work / "prefect")
    served_full, served_second = runs_against_a_running_server(work, arguments.source)
    raw_path = next((work / "home" / "data" / "raw").glob("*.parquet"))
    features_path = next((work / "home" / "data" / "features").rglob("features.parquet"))
    metrics = storage.read_json(Path(default["run_dir"]) / "metrics.json")
    ladder = {}
    for name, key in LADDER.items():
        ladder[name] = run_measured([sys.executable, __file__, "--step", key, "--raw", str(raw_path),
                                     "--features", str(features_path), "--seed", str(arguments.seed)])
        print(name, ladder[name], flush=True)
    ladder[DEFAULT_ROW] = lstm_row(default)
    for name, flags in LEAVE_ONE_OUT.items():
        ladder[name] = lstm_row(pm25_run(work / "home", arguments.source, work / "prefect", *flags))
        print(name, ladder[name], flush=True)
    report = {
        "date": time.strftime("%Y-%m-%d"), "machine": f"{os.cpu_count()} CPU cores, no GPU",
        "ladder": ladder, "default_run": default | {"metrics": None}, "second_run": second | {"metrics": None},
        "prefect_database_seconds": database_seconds,
        "running_server": {"full_run": served_full | {"metrics": None}, "second_run": served_second | {"metrics": None}},
        "persistence": {f"h{h}": round(metrics["models"]["persistence"][f"h{h}"]["rmse"], 2) for h in REPORTED},
        **{name: {f"h{h}": round(metrics["models"][name][f"h{h}"]["rmse"], 2) for h in REPORTED}
           for name in ("gbm", "ridge")},
        "windows": window_speed(features_path),
        "network": network,
        "settings": {"min_train_days": MIN_TRAIN_DAYS, "validation_days": VALIDATION_DAYS, "test_days": TEST_DAYS},
    }
    write_outputs(OUTPUT_DIR, "bench", report, markdown(report) + "\n" + network_markdown(network))
    backtests = backtest_rows(work, arguments.source, backtest_env, list(ROWS), OUTPUT_DIR / "bench_backtest.json")
    storage.write_text(OUTPUT_DIR / "bench_backtest.md", backtest_markdown(backtests))
    print(backtest_markdown(backtests))
    return 0


if __name__ == "__main__":
    sys.exit(main())
