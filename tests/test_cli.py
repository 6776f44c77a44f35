import inspect

import pytest

from pm25.cli import build_parser, main
from flows.train import train_pm25
from tasks.settings import OPERATOR_SETTINGS, Settings


def test_every_run_setting_is_a_flow_parameter_with_its_default_and_a_run_flag():
    parameters = inspect.signature(train_pm25.fn).parameters
    assert set(parameters) == set(Settings.model_fields) - OPERATOR_SETTINGS
    assert parameters["max_epochs"].default == Settings().max_epochs
    run = build_parser().parse_args(["run", "--max-epochs", "3", "--target-transform", "identity", "--home", "/tmp/x"])
    assert (run.max_epochs, run.target_transform, run.home, run.seed) == (3, "identity", "/tmp/x", None)


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
    assert main(["validate", "--source", str(real_csv), "--home", "pm25_home"]) == 0
    assert '"passed": true' in capsys.readouterr().out
    assert (tmp_path / "pm25_home" / "reports" / "data_quality" / "index.html").is_file()
