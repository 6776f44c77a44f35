"""The backtest's verification report: verification.json, four figures and report.md in the backtest's folder,
published as reports/backtest/latest, and shown on the flow run's page as artifacts."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.core import storage
from tasks.core.records import verified_cells
from tasks.publish.rendering import image_data_uri, markdown_table, pyplot
from tasks.publish.run_report import publish_latest

REPORT_FILE = "report.md"
FIGURES = {"skill.png": "Skill against persistence by lead hour", "monthly_rmse.png": "Monthly RMSE",
           "reliability.png": "Reliability of the 80 % intervals", "worst_week.png": "The worst week"}
TABLE_LEADS = (1, 3, 6, 12, 24)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BacktestReport:
    backtest_dir: Path
    latest_dir: Path
    forecasts_path: Path
    verification_path: Path
    report_path: Path


def plot_skill(result: dict[str, Any], path: Path) -> Path:
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(7, 3.6), constrained_layout=True)
    rows = result["by_lead"]
    axis.plot([row["lead_hours"] for row in rows], [row["skill"] for row in rows], marker="o", ms=3, label="lstm")
    axis.axhline(0, color="black", lw=0.8, label="persistence")
    axis.set_xlabel("lead (hours)")
    axis.set_ylabel("skill: 1 − MSE / MSE persistence")
    axis.set_title("Skill against persistence, pooled over the backtest")
    axis.legend(fontsize=8)
    return _save(figure, path)


def plot_monthly_rmse(frame: pd.DataFrame, path: Path) -> Path:
    """RMSE of the model and persistence per month of the origin, over every lead hour."""
    plt = pyplot()
    cells = verified_cells(frame)
    months = cells["origin"].dt.strftime("%Y-%m")
    figure, axis = plt.subplots(figsize=(8, 3.6), constrained_layout=True)
    for column, label in (("forecast", "lstm"), ("persistence", "persistence")):
        rmse = ((cells[column] - cells["observed"]) ** 2).groupby(months).mean() ** 0.5
        axis.plot(rmse.index, rmse.to_numpy(), marker="o", ms=3, label=label)
    axis.set_ylabel("RMSE, leads 1–24 h (µg/m³)")
    axis.set_title("Monthly RMSE by month of the forecast origin")
    axis.tick_params(axis="x", labelrotation=45, labelsize=7)
    axis.legend(fontsize=8)
    return _save(figure, path)


def plot_reliability(result: dict[str, Any], path: Path) -> Path:
    """Coverage of the 80 % intervals by lead hour, and by the size of the forecast (fifths of the forecasts)."""
    plt = pyplot()
    figure, (by_lead, by_size) = plt.subplots(1, 2, figsize=(10, 3.6), constrained_layout=True)
    rows = result["by_lead"]
    by_lead.plot([row["lead_hours"] for row in rows], [row["coverage_80"] for row in rows], marker="o", ms=3)
    by_lead.axhline(0.8, color="black", lw=0.8, ls="--", label="nominal 0.8")
    by_lead.set_xlabel("lead (hours)")
    by_lead.set_ylabel("share of observations inside")
    by_lead.set_ylim(0, 1)
    by_lead.legend(fontsize=8)
    groups = result["intervals_by_size"]
    by_size.bar(range(len(groups)), [group["coverage_80"] for group in groups],
                tick_label=[f"{group['from']:.0f}–{group['to']:.0f}" for group in groups])
    by_size.axhline(0.8, color="black", lw=0.8, ls="--")
    by_size.set_xlabel("forecast (µg/m³), fifths")
    by_size.set_ylim(0, 1)
    figure.suptitle("Reliability of the 80 % intervals")
    return _save(figure, path)


def worst_week(frame: pd.DataFrame) -> tuple[str, pd.Timestamp]:
    """The station and the first day of the 7 days of origins with the largest summed squared error of the model."""
    worst: tuple[float, str, pd.Timestamp] | None = None
    for station, cells in verified_cells(frame).groupby("station"):
        daily = ((cells["forecast"] - cells["observed"]) ** 2).groupby(cells["origin"].dt.floor("D")).sum()
        weekly = daily.rolling("7D").sum()
        if worst is None or weekly.max() > worst[0]:
            worst = (float(weekly.max()), str(station), weekly.idxmax())
    _, station, last_day = worst
    return station, last_day - pd.Timedelta(days=6)


def plot_worst_week(frame: pd.DataFrame, path: Path) -> Path:
    """The worst week's observations against the forecasts issued in it, one a day (each with its next hours and
    80 % interval)."""
    plt = pyplot()
    station, first_day = worst_week(frame)
    own = frame[(frame["station"] == station) & (frame["origin"] >= first_day)
                & (frame["origin"] < first_day + pd.Timedelta(days=7))]
    origins = own["origin"].drop_duplicates().sort_values()
    daily = origins[((origins - origins.iloc[0]) % pd.Timedelta(days=1)) == pd.Timedelta(0)]
    figure, axis = plt.subplots(figsize=(10, 3.8), constrained_layout=True)
    for number, origin in enumerate(daily):
        issued = own[own["origin"] == origin]
        axis.fill_between(issued["target_time"], issued["lower_80"], issued["upper_80"], color="tab:blue", alpha=0.12,
                          lw=0, label="80 % interval" if number == 0 else None)
        axis.plot(issued["target_time"], issued["forecast"], color="tab:blue", lw=1.2,
                  label="forecast issued at the origin" if number == 0 else None)
        axis.plot([origin], issued["persistence"].iloc[:1], "o", color="tab:blue", ms=3)
    observed = own.drop_duplicates("target_time").set_index("target_time")["observed"].sort_index()
    axis.plot(observed.index, observed.to_numpy(), color="black", lw=1.2, label="observed")
    axis.set_title(f"The worst week: {station}, origins from {first_day:%Y-%m-%d}, one forecast a day")
    axis.set_ylabel("PM2.5 (µg/m³)")
    axis.legend(fontsize=8)
    return _save(figure, path)


def _save(figure, path: Path) -> Path:
    plt = pyplot()
    storage.write_atomically(path, lambda tmp: figure.savefig(tmp, dpi=80, format="png"))
    plt.close(figure)
    return path


def _number(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def lead_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The verification table: model and persistence at the reported lead hours."""
    rows = []
    for model, persistence in zip(result["by_lead"], result["persistence_by_lead"]):
        if model["lead_hours"] not in TABLE_LEADS:
            continue
        rows.append({"lead (h)": model["lead_hours"], "n": model["n"], "RMSE": _number(model["rmse"]),
                     "persistence RMSE": _number(persistence["rmse"]), "skill": _number(model["skill"], 3),
                     "MAE": _number(model["mae"]), "bias": _number(model["bias"]),
                     "coverage 80 %": _number(model["coverage_80"], 3), "width 80 %": _number(model["mean_width_80"], 1),
                     "interval score": _number(model["interval_score_80"], 1)})
    return rows


def category_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    categories = result["categories"]
    rows = [{"score": "category accuracy", "lstm": _number(categories["accuracy"], 3),
             "persistence": _number(categories["persistence_accuracy"], 3)},
            {"score": "category accuracy of the plain mean", "lstm": _number(categories["mean_accuracy"], 3),
             "persistence": "–"}]
    for threshold, entry in categories["exceedance"].items():
        for measure in ("pod", "far", "csi"):
            rows.append({"score": f"> {threshold} µg/m³: {measure.upper()}", "lstm": _number(entry["model"][measure], 3),
                         "persistence": _number(entry["persistence"][measure], 3)})
    return rows


def champion_rows(champions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"retrain origin": entry["origin"][:16].replace("T", " "), "challenger": f"v{entry['version']}",
             "challenger score": _number(entry["challenger_score"], 3), "champion score": _number(entry["champion_score"], 3),
             "decision": entry["reason"], "champion after": f"v{entry['champion_version']}"} for entry in champions]


def report_markdown(result: dict[str, Any], name: str, image_link=lambda file: file) -> str:
    return "\n".join([
        f"# Backtest {name}",
        "",
        f"{result['origins']} forecast origins from {result['first_origin']} to {result['last_origin']}, "
        f"{len(result['champions'])} retrain origin(s), station(s): {', '.join(result['stations_scored'])}. "
        f"Scores in µg/m³ on {result['scoring']} ({result['cells']} cells).",
        "",
        markdown_table(lead_rows(result)),
        "",
        f"The category issued for the next 24 hours (their mean forecast, quantile-mapped on the validation span) "
        f"against the observed mean's, China's daily PM2.5 categories (HJ 633-2012), {result['categories']['n']} "
        "origins with a valid observed mean:",
        "",
        markdown_table(category_rows(result)),
        "",
        "The champion at each retrain origin:",
        "",
        markdown_table(champion_rows(result["champions"])),
        "",
        *(line for file, title in FIGURES.items() for line in (f"![{title}]({image_link(file)})", "")),
    ])


def write_backtest_report(forecasts_path: Path, verification_path: Path, backtests_dir: Path) -> BacktestReport:
    """The figures and report.md beside forecasts.parquet and verification.json; then reports/backtest/latest."""
    backtest_dir = verification_path.parent
    frame = pd.read_parquet(forecasts_path)
    result = storage.read_json(verification_path)
    plot_skill(result, backtest_dir / "skill.png")
    plot_monthly_rmse(frame, backtest_dir / "monthly_rmse.png")
    plot_reliability(result, backtest_dir / "reliability.png")
    plot_worst_week(frame, backtest_dir / "worst_week.png")
    report_path = storage.write_text(backtest_dir / REPORT_FILE, report_markdown(result, backtest_dir.name))
    latest = publish_latest(backtest_dir, backtests_dir)
    log.info("backtest report %s", report_path)
    return BacktestReport(backtest_dir, latest, forecasts_path, verification_path, report_path)


@task(cache_policy=NO_CACHE, name="backtest-report", task_run_name="report the backtest's verification")
def backtest_report_task(forecasts_path: Path, verification_path: Path, backtests_dir: Path) -> BacktestReport:
    """Write the report, and show the verification table and the report (figures inline) on the run's page."""
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    report = write_backtest_report(forecasts_path, verification_path, backtests_dir)
    result = storage.read_json(verification_path)
    name = report.backtest_dir.name
    create_table_artifact(lead_rows(result), key="backtest-verification",
                          description=f"Backtest {name}: verification by lead hour (µg/m³)")
    create_markdown_artifact(report_markdown(result, name, lambda file: image_data_uri(report.backtest_dir / file)),
                             key="backtest-report", description=f"Backtest {name}: verification report")
    return report
