import inspect

import pytest

from flows.backtest import backtest_pm25
from flows.train import train_pm25
from pm25.cli import build_parser, main
from pm25.summaries import backtest_summary, forecast_summary, run_summary
from tasks.core.settings import BACKTEST_SETTINGS, OPERATOR_SETTINGS, Settings


def test_every_run_setting_is_a_flow_parameter_with_its_default_and_a_run_flag():
    parameters = inspect.signature(train_pm25.fn).parameters
    assert set(parameters) == set(Settings.model_fields) - OPERATOR_SETTINGS - BACKTEST_SETTINGS
    assert parameters["max_epochs"].default == Settings().max_epochs
    run = build_parser().parse_args(["run", "--max-epochs", "3", "--target-transform", "identity", "--home", "/tmp/x"])
    assert (run.max_epochs, run.target_transform, run.home, run.seed) == (3, "identity", "/tmp/x", None)


def test_every_backtest_setting_is_a_flow_parameter_and_a_flag():
    assert set(inspect.signature(backtest_pm25.fn).parameters) == set(Settings.model_fields) - OPERATOR_SETTINGS
    backtest = build_parser().parse_args(["backtest", "--start", "2014-01-01", "--end", "2014-12-31",
                                          "--retrain-every", "7d", "--every", "1h", "--forecast-at", "03:00"])
    assert (backtest.backtest_start, backtest.backtest_end, backtest.retrain_every, backtest.every,
            backtest.forecast_at) == ("2014-01-01", "2014-12-31", "7d", "1h", "03:00")


def test_environment_gives_defaults_and_flags_override_them(monkeypatch):
    monkeypatch.setenv("PM25_MAX_EPOCHS", "7")
    monkeypatch.setenv("PM25_SEED", "9")
    settings = Settings.resolve(seed=3, batch_size=None)
    assert (settings.max_epochs, settings.seed, settings.batch_size) == (7, 3, 256)


def test_invalid_setting_exits_2_without_running(capsys):
    assert main(["run", "--source", "ftp://example.org/data.csv"]) == 2
    assert "http(s) URL or a local path" in capsys.readouterr().err


@pytest.mark.usefixtures("prefect_server")
def test_validate_command_fails_cleanly_on_bad_data(real_lines, tmp_path, capsys):
    cells = real_lines[50].split(",")
    cells[9] = "SW"  # cbwd: not a code the UCI file uses
    broken = tmp_path / "wind.csv"
    broken.write_text("".join(real_lines[:50]) + ",".join(cells) + "".join(real_lines[51:]), encoding="utf-8")
    assert main(["validate", "--source", str(broken), "--home", str(tmp_path / "home")]) == 1
    error = capsys.readouterr().err
    assert error.startswith("pm25 validate: ") and "Traceback" not in error
    assert "'cbwd'" in error and "rows [50]" in error and "expect_column_values_to_be_in_set" in error


@pytest.mark.usefixtures("prefect_server")
def test_validate_command_passes_on_the_real_file_with_a_relative_home(real_csv, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the default home, pm25_home, is relative to where pm25 runs
    assert main(["validate", "--source", str(real_csv), "--home", "pm25_home", "--json"]) == 0
    assert '"passed": true' in capsys.readouterr().out
    assert (tmp_path / "pm25_home" / "reports" / "data_quality" / "index.html").is_file()


def test_run_summary_says_where_the_run_is_what_was_decided_and_how_it_scored():
    result = {"run_id": "20261128T000000Z-abcd1234", "stations": ["A", "B"], "left_out": {"C": "PM2.5 missing"},
              "model_version": 3, "promoted": False, "decision": "does not beat champion v2: 30.100 vs 29.900",
              "report": "/h/reports/runs/x/report.md", "forecast": "/h/reports/forecast/latest.json",
              "metrics": [{"model": "lstm", "rmse_h1": 16.5, "rmse_h6": 43.75, "rmse_h24": 71.84},
                          {"model": "gbm", "rmse_h1": 17.85, "rmse_h6": 49.05, "rmse_h24": 74.86},
                          {"model": "persistence", "rmse_h1": 19.31, "rmse_h6": 54.62, "rmse_h24": 87.84}]}
    lines = run_summary(result).splitlines()
    assert lines[0] == "run 20261128T000000Z-abcd1234: 2 station(s): A, B"
    assert lines[1] == "  left out: C (see the report and the Data Docs)"
    assert lines[2] == "  model v3, not promoted: does not beat champion v2: 30.100 vs 29.900"
    assert lines[4].split() == ["1", "h", "6", "h", "24", "h"]
    assert lines[5].split() == ["lstm", "16.50", "43.75", "71.84"] and lines[6].split()[0] == "persistence"
    assert lines[-1] == "  forecast: /h/reports/forecast/latest.csv (.json, .png)"
    mapped = run_summary({**result, "forecast_map": "/h/reports/forecast/latest_map.png"}).splitlines()
    assert mapped[-1] == "  forecast: /h/reports/forecast/latest.csv (.json, .png, _map.png)"


def test_forecast_summary_prints_every_hour_with_its_interval():
    rows = [{"station": "A", "target_time": f"2017-03-01T{h:02d}:00:00+08:00", "horizon_hours": h + 1, "pm25": 50.0 + h,
             "lower_80": 40.0, "upper_80": 70.0} for h in range(24)]
    text = forecast_summary({"origin": "2017-02-28T23:00:00+08:00", "model_version": 1, "stations": ["A"],
                             "forecasts": rows}, {"csv": "f.csv", "json": "f.json", "plot": "f.png"})
    lines = text.splitlines()
    assert lines[0].startswith("PM2.5 forecast from 2017-02-28T23:00:00+08:00 by model v1") and lines[1] == "A (lstm):"
    assert len(lines) == 2 + 24 + 1 and lines[2].split() == ["2017-03-01", "00:00", "+1", "h", "50.0", "[40.0", "–", "70.0]"]
    assert lines[-1] == "files: f.csv, f.json, f.png"
    files = {"csv": "f.csv", "json": "f.json", "plot": "f.png", "map": "f_map.png"}
    assert forecast_summary({"origin": "o", "model_version": 1, "stations": ["A"], "forecasts": rows},
                            files).splitlines()[-1] == "files: f.csv, f.json, f.png, f_map.png"


def test_backtest_summary_shows_scores_against_persistence_and_where_the_report_is():
    def lead(n, rmse, skill=None):
        return {"lead_hours": n, "n": 10, "rmse": rmse, "mae": 1.0, "bias": 0.0, "skill": skill}

    verification = {"first_origin": "2014-01-01T02:00:00+08:00", "last_origin": "2014-12-31T02:00:00+08:00",
                    "by_lead": [lead(n, 10.0 + n, 0.1) for n in range(1, 25)],
                    "persistence_by_lead": [lead(n, 12.0 + n, 0.0) for n in range(1, 25)],
                    "categories": {"accuracy": 0.61, "persistence_accuracy": 0.5,
                                   "exceedance": {"75": {"model": {"csi": 0.7}, "persistence": {"csi": 0.6}}}}}
    result = {"backtest_id": "B1", "origins": 365, "stations": ["US_Embassy"], "retrain_origins": 14, "trained": 14,
              "promoted": 9, "report": "r/report.md", "forecasts": "r/forecasts.parquet"}
    lines = backtest_summary(verification, result).splitlines()
    assert lines[0] == "backtest B1: 365 origins from 2014-01-01T02:00 to 2014-12-31T02:00, 1 station(s)"
    assert "14 retrain origin(s), 14 trained now" in lines[1] and "9 promoted" in lines[1]
    assert lines[3].split() == ["RMSE", "lstm", "11.00", "16.00", "34.00"]
    assert lines[4].split() == ["RMSE", "persist.", "13.00", "18.00", "36.00"]
    assert "category accuracy 0.610 (persistence 0.500)" in lines[6] and "CSI above 75 µg/m³ 0.700" in lines[6]
    assert lines[-2].endswith("r/report.md")
