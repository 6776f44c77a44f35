"""The real training flow on the real UCI file (one epoch), and the flow stopping on bad data."""

import json
import shutil
from pathlib import Path

import pytest

from flows.train import train_pm25
from tasks.core.errors import DataError, TrainingTimeout
from tasks.core.hours import REPORTED_HORIZONS
from tasks.core.weather import NOISY_TRACK, PERFECT_TRACK
from tasks.core.home import weather_model_dir
from tasks.publish.run_report import render_plots
from tasks.scoring.evaluate import BASELINES

pytestmark = pytest.mark.usefixtures("prefect_server")


def test_flow_writes_every_output(trained_home):
    home, result = trained_home
    latest = home / "reports" / "latest"
    for name in ("metrics.json", "forecast.png", "loss.png", "error_by_horizon.png", "report.md", "predictions.parquet"):
        assert (latest / name).is_file(), name
    assert latest.resolve() == Path(result["run_dir"]).resolve()
    assert (home / "reports" / "data_quality" / "index.html").is_file()
    assert result["stations"] == ["US_Embassy"] and result["left_out"] == {}
    model_dir = Path(result["model"]).parent
    for name in ("model.keras", "network.json", "preprocessing/US_Embassy.json", "windows.json", "training_log.csv",
                 "training.json"):
        assert (model_dir / name).is_file(), name
        assert (weather_model_dir(model_dir) / name).is_file(), name  # the weather model, in its network model's folder
    for name in ("weather_scaling.json", "intervals.json", "categories.json", "intervals_lstm_wx_perfect.json"):
        assert (weather_model_dir(model_dir) / name).is_file(), name
    assert "data_quality/index.html" in (latest / "report.md").read_text()
    registry = json.loads((home / "models" / "registry.json").read_text())
    assert registry["champion"] == result["model_version"] == 1 and result["promoted"]
    assert registry["versions"][0]["model_dir"] == model_dir.name
    forecast = json.loads((home / "reports" / "forecast" / "latest.json").read_text())
    assert Path(result["forecast"]) == home / "reports" / "forecast" / "latest.json"
    assert forecast["origin"] == "2014-12-31T23:00:00+08:00" and len(forecast["forecasts"]) == 24


def test_metrics_hold_every_model_and_horizon_scored_on_the_same_hours(trained_home):
    home, _ = trained_home
    metrics = json.loads((home / "reports" / "latest" / "metrics.json").read_text())
    assert metrics["test_start"].startswith("2014-01-01T00:00") and metrics["test_end"].startswith("2014-12-31T23:00")
    assert set(metrics["models"]) == {"lstm", PERFECT_TRACK, NOISY_TRACK, *BASELINES}
    for horizon in REPORTED_HORIZONS:
        counts = {name: scores[f"h{horizon}"]["n"] for name, scores in metrics["models"].items()}
        assert len(set(counts.values())) == 1 and counts["lstm"] > 8000
    # Persistence on 2014's observed hours: the published check that split and scoring are honest.
    assert metrics["models"]["persistence"]["h1"]["rmse"] == pytest.approx(22.06, abs=0.01)
    assert 0.5 < metrics["intervals"]["coverage_80"] < 1.0


def test_a_models_pictures_are_reused_until_the_intervals_they_show_change(trained_home, tmp_path):
    home, _ = trained_home
    latest = home / "reports" / "latest"
    metrics = json.loads((latest / "metrics.json").read_text())
    arguments = (latest / "predictions.parquet", latest / "training_log.csv", tmp_path / "plots")

    def drawn() -> tuple[int, int]:
        status = (tmp_path / "plots" / "forecast.png").stat()
        return status.st_ino, status.st_mtime_ns

    render_plots(metrics, *arguments)
    first = drawn()
    render_plots(metrics, *arguments)
    assert drawn() == first
    render_plots({**metrics, "intervals": {**metrics["intervals"], "coverage_80": 0.5}}, *arguments)
    assert drawn() != first


def test_metrics_and_report_hold_the_validation_span_scores_that_settings_are_chosen_on(trained_home):
    home, _ = trained_home
    validation = json.loads((home / "reports" / "latest" / "metrics.json").read_text())["validation"]
    assert validation["start"].startswith("2013-01-01T00:00") and validation["end"].startswith("2013-12-31T23:00")
    assert set(validation["models"]) == {"lstm", PERFECT_TRACK, NOISY_TRACK, *BASELINES}
    for horizon in REPORTED_HORIZONS:
        counts = {name: scores[f"h{horizon}"]["n"] for name, scores in validation["models"].items()}
        assert len(set(counts.values())) == 1 and counts["lstm"] > 8000
    assert "On the validation span (2013-01-01T00:00" in (home / "reports" / "latest" / "report.md").read_text()


def test_second_run_reuses_ingest_validation_and_training(trained_home, real_csv, caplog, monkeypatch):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    home, first = trained_home
    first_metrics = json.loads((Path(first["run_dir"]) / "metrics.json").read_text())
    monkeypatch.setenv("PM25_KEEP_RUNS", "1")
    state = train_pm25(source=str(real_csv), home=str(home), max_epochs=1, return_state=True)
    again = state.result()
    for stage in ("ingest", "validation", "dataset", "preprocess", "training", "evaluation", "plots", "forecast"):
        assert f"{stage} cache hit" in caplog.text, stage
    with get_client(sync_client=True) as client:
        task_runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id])))
    by_name = {run.name.split(" ")[0]: run.state for run in task_runs}
    for stage in ("ingest", "dataset", "preprocess", "train", "evaluate", "forecast"):
        assert by_name[stage].name == "Cached" and by_name[stage].is_completed(), (stage, by_name[stage])
    assert by_name["report"].name == "Completed"  # a new run's report is written anew
    assert json.loads((Path(again["run_dir"]) / "metrics.json").read_text()) == first_metrics
    assert again["model"] == first["model"] and again["run_id"] != first["run_id"]
    # PM25_KEEP_RUNS=1: the first run's report (its predictions too) made way for the second's.
    assert [path.name for path in (home / "reports" / "runs").iterdir()] == [again["run_id"]]
    assert len([path for path in (home / "models").iterdir() if path.is_dir()]) == 1
    assert again["model_version"] == first["model_version"]  # the same model is registered once
    assert len(json.loads((home / "models" / "registry.json").read_text())["versions"]) == 1


def _write_variant(lines: list[str], path: Path, edit) -> Path:
    header, rows = lines[0], lines[1:]
    path.write_text(edit(header, rows), encoding="utf-8")
    return path


def test_missing_column_stops_the_flow_before_training(real_lines, tmp_path):
    def drop_pres(header, rows):
        def without(line):
            cells = line.rstrip("\r\n").split(",")
            return ",".join(cells[:8] + cells[9:]) + "\r\n"
        return "".join(without(line) for line in [header, *rows])

    source = _write_variant(real_lines, tmp_path / "no_pres.csv", drop_pres)
    with pytest.raises(DataError, match=r"no_pres\.csv: required column\(s\) \['PRES'\] missing"):
        train_pm25(source=str(source), home=str(tmp_path / "home"), max_epochs=1)
    assert not (tmp_path / "home" / "models").exists()


def test_out_of_range_value_stops_the_flow_naming_rule_column_and_rows(real_lines, tmp_path):
    def pressure_in_pascal(header, rows):
        cells = rows[99].split(",")
        cells[8] = str(float(cells[8]) * 100)
        return header + "".join(rows[:99]) + ",".join(cells) + "".join(rows[100:])

    source = _write_variant(real_lines, tmp_path / "pascal.csv", pressure_in_pascal)
    with pytest.raises(DataError) as failure:
        train_pm25(source=str(source), home=str(tmp_path / "home"), max_epochs=1)
    message = str(failure.value)
    assert "expect_column_values_to_be_between" in message and "'PRES'" in message and "rows [100]" in message
    assert not (tmp_path / "home" / "models").exists()
    docs = message[message.index("Data Docs: ") + len("Data Docs: "):].split()[0]
    assert docs.startswith(str(tmp_path / "home" / "reports" / "data_quality")) and Path(docs).is_file()


def test_a_training_past_its_timeout_fails_the_run_naming_it_and_saves_no_model(trained_home, real_csv, tmp_path,
                                                                               monkeypatch):
    """PM25_TRAINING_TIMEOUT_SECONDS bounds each training (a new seed: a model to train, on the cached features)."""
    home = tmp_path / "home"
    shutil.copytree(trained_home[0], home, symlinks=True)
    models_before = set((home / "models").iterdir())
    monkeypatch.setenv("PM25_TRAINING_TIMEOUT_SECONDS", "0.5")
    with pytest.raises(TrainingTimeout, match=r"ran past its timeout of 0.5 s \(PM25_TRAINING_TIMEOUT_SECONDS\)"):
        train_pm25(source=str(real_csv), home=str(home), max_epochs=1, seed=7)
    started = set((home / "models").iterdir()) - models_before
    assert started and not any((folder / "model.keras").exists() for folder in started)
    assert json.loads((home / "models" / "registry.json").read_text()) == json.loads(
        (trained_home[0] / "models" / "registry.json").read_text())
