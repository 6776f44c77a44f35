"""Report: metrics table, plots and a Markdown report per run, published atomically as reports/latest."""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.core import storage
from tasks.core.home import METRICS_FILE, PREDICTIONS_FILE, RUN_ID, TRAINING_LOG
from tasks.core.hours import REPORTED_HORIZONS
from tasks.core.records import NetworkSummary
from tasks.publish.rendering import image_data_uri, markdown_table, pyplot

LATEST = "latest"
REPORT_FILE = "report.md"
REMOVING = ".removing-"
PLOTS_DIR = "plots"  # in a model folder: the pictures of its report
PLOTS = ("forecast.png", "error_by_horizon.png", "loss.png")
PLOTS_KEY = "plots.json"  # what the pictures were drawn from
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReportOutput:
    run_dir: Path
    latest_dir: Path
    report_path: Path
    metrics_rows: list[dict[str, Any]]


def metrics_rows(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per model: RMSE and MAE at each reported horizon and, for a weather track, what it was fed; best models
    first by 24-hour RMSE."""
    rows = []
    for name, scores in metrics["models"].items():
        row: dict[str, Any] = {"model": name}
        for horizon in REPORTED_HORIZONS:
            key = f"h{horizon}"
            if key in scores:
                row[f"rmse_{key}"] = round(scores[key]["rmse"], 2)
                row[f"mae_{key}"] = round(scores[key]["mae"], 2)
        row["fed"] = metrics.get("weather_tracks", {}).get(name, {}).get("fed", "")  # what a weather track is
        rows.append(row)
    last = max((key for key in rows[0] if key.startswith("rmse_")), key=lambda key: int(key.split("_h")[1]))
    return sorted(rows, key=lambda row: row[last])


def weather_paragraph(metrics: dict[str, Any]) -> list[str]:
    """What the weather model's tracks are, their intervals' coverage, and how much of the span `lstm_wx` had a
    forecast for."""
    tracks = metrics.get("weather_tracks", {})
    if not tracks:
        return []
    lines = ["The weather model (`lstm_wx*`, docs/weather.md) learns by perfect prognosis and is scored fed three ways: "
             + "; ".join(f"`{track}`: {entry['fed']}, 80 % intervals cover {entry['intervals']['coverage_80']:.3f}"
                         for track, entry in tracks.items()) + "."]
    if "share_with_forecast" in tracks.get("lstm_wx", {}):
        lines.append(f"`lstm_wx` had a weather forecast of every target hour for "
                     f"{tracks['lstm_wx']['share_with_forecast']:.3f} of the scored cells; the others carry `lstm`'s.")
    return [" ".join(lines), ""]


def validation_ratios(metrics: dict[str, Any]) -> str:
    """One sentence: the LSTM's and the learned baselines' RMSE as a share of persistence's on the validation span."""
    validation = metrics["validation"]
    models = validation["models"]
    horizons = [f"h{h}" for h in REPORTED_HORIZONS if f"h{h}" in models["persistence"]]
    shares = {name: " / ".join(f"{models[name][key]['rmse'] / models['persistence'][key]['rmse']:.3f}" for key in horizons)
              for name in ("lstm", "gbm", "ridge") if name in models}
    return (f"On the validation span ({validation['start']} to {validation['end']}), on which the settings are chosen, "
            f"RMSE as a share of persistence's at {' / '.join(key[1:] for key in horizons)} h: "
            + "; ".join(f"{name} {share}" for name, share in shares.items()) + ".")


def station_rows(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per station: RMSE as a share of persistence's at 1, 6 and 24 h for both LSTMs, and coverage."""
    rows = []
    for station, entry in metrics.get("stations", {}).items():
        models = entry["models"]
        row: dict[str, Any] = {"station": station}
        for name in ("lstm", "lstm_station"):
            for key in ("h1", "h6", "h24"):
                if key in models[name]:
                    row[f"{name} {key[1:]} h"] = round(models[name][key]["rmse"] / models["persistence"][key]["rmse"], 3)
        row["coverage_80"] = round(entry["intervals"]["coverage_80"], 3)
        rows.append(row)
    return rows


def plot_forecast(predictions: pd.DataFrame, path: Path, stretch_days: int = 14) -> Path:
    """Observed PM2.5 against the LSTM's 1-hour and last-horizon forecasts (with its 80 % interval):
    a readable stretch and the whole test span."""
    plt = pyplot()
    last = int(predictions["horizon"].max())
    by_target = {h: predictions[predictions["horizon"] == h].set_index("target_time") for h in (1, last)}
    observed = by_target[1]["observed"]
    # A stretch with plenty of observations and a high peak shows how the forecasts track an episode.
    daily_peak = observed.resample("D").max()
    peak_day = daily_peak.idxmax() if daily_peak.notna().any() else observed.index[0]
    start = max(observed.index[0], peak_day - pd.Timedelta(days=stretch_days // 2))
    stretch = slice(start, start + pd.Timedelta(days=stretch_days))
    figure, axes = plt.subplots(2, 1, figsize=(11, 7), constrained_layout=True)
    for axis, window, title in ((axes[0], stretch, f"{stretch_days} days around the test span's worst episode"),
                                (axes[1], slice(None), "whole test span")):
        axis.plot(observed.loc[window], color="black", lw=1.0, label="observed")
        far = by_target[last].loc[window]
        axis.fill_between(far.index, far["lstm_lower"], far["lstm_upper"], color="tab:orange",
                          alpha=0.2, lw=0, label=f"80 % interval, {last} h ahead")
        axis.plot(by_target[1]["lstm"].loc[window], color="tab:blue", lw=0.8, label="LSTM, 1 h ahead")
        axis.plot(far["lstm"], color="tab:orange", lw=0.8, alpha=0.8, label=f"LSTM, {last} h ahead")
        axis.set_title(title)
        axis.set_ylabel("PM2.5 (µg/m³)")
        axis.legend(loc="upper right", fontsize=8)
        axis.tick_params(axis="x", labelrotation=25)
    storage.write_atomically(path, lambda tmp: figure.savefig(tmp, dpi=80, format="png"))
    plt.close(figure)
    return path


def plot_station_episodes(predictions: pd.DataFrame, path: Path, stretch_days: int = 7) -> Path:
    """Small multiples: at every station, observed PM2.5 and the network LSTM's 1-hour and last-horizon
    forecasts (with its 80 % interval) over the week around the test span's worst episode (the hour with the
    highest reading averaged over the stations), the same week for all."""
    plt = pyplot()
    last = int(predictions["horizon"].max())
    near = predictions[predictions["horizon"] == 1].pivot(index="target_time", columns="station", values="observed")
    peak = near.mean(axis=1).idxmax()
    window = (peak - pd.Timedelta(days=stretch_days / 2), peak + pd.Timedelta(days=stretch_days / 2))
    stations = sorted(predictions["station"].unique())
    columns = min(3, len(stations))
    rows = -(-len(stations) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 2.6 * rows), sharex=True, sharey=True,
                                constrained_layout=True, squeeze=False)
    for axis in axes.ravel()[len(stations):]:
        axis.set_visible(False)
    for axis, station in zip(axes.ravel(), stations):
        own = predictions[(predictions["station"] == station) & predictions["target_time"].between(*window)]
        one, far = (own[own["horizon"] == h].set_index("target_time") for h in (1, last))
        axis.fill_between(far.index, far["lstm_lower"], far["lstm_upper"], color="tab:orange", alpha=0.2, lw=0)
        axis.plot(one["observed"], color="black", lw=1.0, label="observed")
        axis.plot(one["lstm"], color="tab:blue", lw=0.8, label="1 h ahead")
        axis.plot(far["lstm"], color="tab:orange", lw=0.8, label=f"{last} h ahead (80 % interval)")
        axis.set_title(station, fontsize=9)
        axis.tick_params(axis="x", labelrotation=30, labelsize=7)
    axes[0][0].set_ylabel("PM2.5 (µg/m³)")
    axes[0][0].legend(loc="upper left", fontsize=7)
    figure.suptitle(f"Network LSTM at every station, the week around the test span's worst episode ({peak:%Y-%m-%d %H:%M})")
    storage.write_atomically(path, lambda tmp: figure.savefig(tmp, dpi=80, format="png"))
    plt.close(figure)
    return path


def plot_error_by_horizon(metrics: dict[str, Any], path: Path) -> Path:
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(8, 4.5), constrained_layout=True)
    horizons = metrics["horizons"]
    for name, scores in metrics["models"].items():
        rmse = np.array(scores["rmse_by_horizon"], dtype="float64")  # None (no forecast at that horizon) → NaN
        shown = np.isfinite(rmse)
        axis.plot(np.array(horizons)[shown], rmse[shown], marker="o", ms=3, lw=2.2 if name == "lstm" else 1.2, label=name)
    axis.set_xlabel("hours ahead")
    axis.set_ylabel("RMSE (µg/m³)")
    stations = len(metrics.get("stations_scored", [])) or 1
    pooled = f", pooled over {stations} stations" if stations > 1 else ""
    axis.set_title(f"Test-span RMSE by horizon (same observed hours for every model{pooled})")
    axis.grid(alpha=0.3)
    axis.legend()
    storage.write_atomically(path, lambda tmp: figure.savefig(tmp, dpi=80, format="png"))
    plt.close(figure)
    return path


def plot_loss(training_log: Path, path: Path) -> Path:
    plt = pyplot()
    history = pd.read_csv(training_log)
    figure, axis = plt.subplots(figsize=(7, 4), constrained_layout=True)
    axis.plot(history["epoch"] + 1, history["loss"], marker="o", label="train")
    axis.plot(history["epoch"] + 1, history["val_loss"], marker="o", label="validation")
    best = int(np.argmin(history["val_loss"].to_numpy()))
    axis.axvline(best + 1, color="grey", ls="--", lw=1, label=f"best epoch ({best + 1}), weights restored")
    axis.set_xlabel("epoch")
    axis.set_ylabel("masked MSE (standardised, horizon-weighted)")
    axis.legend()
    storage.write_atomically(path, lambda tmp: figure.savefig(tmp, dpi=80, format="png"))
    plt.close(figure)
    return path


def report_markdown(metrics: dict[str, Any], rows: list[dict[str, Any]], docs_index: str, run_name: str,
                    left_out: dict[str, str], image_link=lambda name: name) -> str:
    """The run report; `image_link` maps a picture's file name to its link (a relative path, or a data URI)."""
    stations = metrics.get("stations_scored", [])
    network = [
        f"Pooled over {len(stations)} stations ({', '.join(stations)}). `lstm` is the network model (one model for "
        "every station, reading every station's recent PM2.5); `lstm_station` is one LSTM per station on its own data. "
        "Per station, RMSE as a share of persistence's:", "", markdown_table(station_rows(metrics)), "",
    ] if len(stations) > 1 else []
    dropped = ["Left out of this run by the data-quality rules: " + "; ".join(
        f"**{station}**: {reason}" for station, reason in left_out.items()), ""] if left_out else []
    return "\n".join([
        f"# PM2.5 forecast report: {run_name}",
        "",
        f"Test span {metrics['test_start']} to {metrics['test_end']}. Scores in µg/m³ on {metrics['scoring']}.",
        "",
        markdown_table(rows),
        "",
        *network,
        *dropped,
        f"LSTM 80 % prediction intervals cover {metrics['intervals']['coverage_80']:.3f} of the scored test hours "
        f"({metrics['intervals']['method']}); in each fifth of the forecasts by size, smallest first: "
        + " / ".join(f"{share:.3f}" for share in metrics['intervals']['coverage_by_size_fifth']) + ".",
        "",
        validation_ratios(metrics),
        "",
        *weather_paragraph(metrics),
        f"![Observed vs forecast]({image_link('forecast.png')})",
        "",
        f"![RMSE by horizon]({image_link('error_by_horizon.png')})",
        "",
        f"![Training loss]({image_link('loss.png')})",
        "",
        f"Data quality: [Great Expectations Data Docs]({docs_index})",
        "",
    ])


def publish_latest(run_dir: Path, reports_dir: Path) -> Path:
    """Point reports/latest at `run_dir` with one atomic rename of a symbolic link."""
    latest = reports_dir / LATEST
    staging = reports_dir / f".{LATEST}.{os.getpid()}"
    staging.unlink(missing_ok=True)
    staging.symlink_to(os.path.relpath(run_dir, reports_dir), target_is_directory=True)
    if latest.is_dir() and not latest.is_symlink():
        shutil.rmtree(latest)
    os.replace(staging, latest)
    return latest


def prune_run_reports(runs_dir: Path, keep: int, current: Path) -> list[str]:
    """Remove the run reports beyond the `keep` newest complete ones, never `current` nor the one reports/latest
    points to; return the removed ids.

    Run ids sort by their start time. A folder without its report.md is a run that failed or one still running
    (runs may share a home and overlap): it goes only when it started before a complete report that goes too, so
    a run in progress is not removed from under it. A folder is renamed out of sight before it is removed, so no
    reader finds one half removed.
    """
    for leftover in runs_dir.glob(f"{REMOVING}*"):  # an earlier removal cut short
        shutil.rmtree(leftover, ignore_errors=True)
    runs = sorted(path.name for path in runs_dir.iterdir() if path.is_dir() and RUN_ID.fullmatch(path.name))
    complete = [name for name in runs if (runs_dir / name / REPORT_FILE).is_file()]
    latest = runs_dir.parent / LATEST  # another run's, where it published after this one
    kept = {*complete[-keep:], current.name, *([latest.resolve().name] if latest.is_symlink() else [])}
    outdated = [name for name in complete if name not in kept]
    removed = [name for name in runs if name not in kept and outdated and name <= outdated[-1]]
    for name in removed:
        hidden = runs_dir / f"{REMOVING}{name}"
        try:
            os.replace(runs_dir / name, hidden)
        except FileNotFoundError:
            continue  # another run's report removed it meanwhile
        shutil.rmtree(hidden, ignore_errors=True)
    return removed


def render_plots(metrics: dict[str, Any], predictions_path: Path, training_log: Path, plots_dir: Path) -> Path:
    """Draw the report's pictures into `plots_dir` unless they are there already.

    They depend only on the model (its test-span scores, its intervals and its training log), so the model folder
    keeps them, with the key of the intervals they show, and a later run of the same model copies them instead of
    drawing them again.
    """
    key = {"intervals": storage.fingerprint(metrics["intervals"])}
    if all((plots_dir / name).exists() for name in PLOTS) and (plots_dir / PLOTS_KEY).exists() \
            and storage.read_json(plots_dir / PLOTS_KEY) == key:
        log.info("plots cache hit: %s", plots_dir)
        return plots_dir
    predictions = pd.read_parquet(predictions_path)
    if predictions["station"].nunique() > 1:
        plot_station_episodes(predictions, plots_dir / "forecast.png")
    else:
        plot_forecast(predictions, plots_dir / "forecast.png")
    plot_error_by_horizon(metrics, plots_dir / "error_by_horizon.png")
    plot_loss(training_log, plots_dir / "loss.png")
    storage.write_json(plots_dir / PLOTS_KEY, key)  # written last: the pictures above are complete
    return plots_dir


def write_report(run_dir: Path, reports_dir: Path, model_dir: Path, quality: NetworkSummary,
                 keep_runs: int) -> ReportOutput:
    """Write the pictures and report.md into `run_dir` (which holds the run's metrics and predictions), publish it
    as latest, and keep the newest `keep_runs` run reports. The pictures are kept in the model folder too."""
    metrics = storage.read_json(run_dir / METRICS_FILE)
    training_log, plots_dir = model_dir / TRAINING_LOG, model_dir / PLOTS_DIR
    render_plots(metrics, run_dir / PREDICTIONS_FILE, training_log, plots_dir)
    for name in PLOTS:
        storage.write_bytes(run_dir / name, (plots_dir / name).read_bytes())
    shutil.copyfile(training_log, run_dir / "training_log.csv")
    rows = metrics_rows(metrics)
    docs_link = os.path.relpath(quality.docs_index, run_dir)
    report_path = storage.write_text(run_dir / REPORT_FILE,
                                     report_markdown(metrics, rows, docs_link, run_dir.name, quality.left_out))
    latest = publish_latest(run_dir, reports_dir)
    log.info("report written to %s (published as %s)", report_path, latest)
    removed = prune_run_reports(run_dir.parent, keep_runs, run_dir)
    if removed:
        log.info("removed %d older run report(s), keeping the newest %d: %s", len(removed), keep_runs,
                 ", ".join(removed))
    return ReportOutput(run_dir=run_dir, latest_dir=latest, report_path=report_path, metrics_rows=rows)


@task(cache_policy=NO_CACHE, name="report", task_run_name="report {run_dir.name}")
def report_task(run_dir: Path, reports_dir: Path, model_dir: Path, quality: NetworkSummary,
                keep_runs: int) -> ReportOutput:
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    output = write_report(run_dir, reports_dir, model_dir, quality, keep_runs)
    create_table_artifact(output.metrics_rows, key="pm25-metrics", description="Test-span RMSE/MAE (µg/m³) by model and "
                          "horizon, pooled over the network's stations")
    create_markdown_artifact(
        report_markdown(storage.read_json(run_dir / METRICS_FILE), output.metrics_rows, quality.docs_index,
                        run_dir.name, quality.left_out, lambda name: image_data_uri(run_dir / name)),
        key="pm25-report",
        description="Forecast report with plots",
    )
    return output
