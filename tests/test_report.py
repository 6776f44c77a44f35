"""Keeping the newest run reports: which folders a finished run removes under reports/runs/."""

from pathlib import Path

import pytest

from tasks.publish.run_report import REPORT_FILE, prune_run_reports, publish_latest


def make_runs(runs_dir: Path, complete: list[str], unfinished: list[str] = ()) -> None:
    for name in complete:
        (runs_dir / name).mkdir()
        (runs_dir / name / "predictions.parquet").write_bytes(b"x")
        (runs_dir / name / REPORT_FILE).write_text("# report")
    for name in unfinished:
        (runs_dir / name).mkdir()
        (runs_dir / name / "metrics.json").write_text("{}")


@pytest.fixture
def runs_dir(tmp_path: Path) -> Path:
    """reports/runs/ of a home whose reports/ holds nothing else."""
    (tmp_path / "runs").mkdir()
    return tmp_path / "runs"


def run_id(day: int) -> str:
    return f"202611{day:02d}T020000Z-{day:08x}"


def remaining(runs_dir: Path) -> list[str]:
    return sorted(path.name for path in runs_dir.iterdir())


def test_the_newest_complete_reports_are_kept(runs_dir):
    make_runs(runs_dir, [run_id(day) for day in range(1, 6)])
    assert prune_run_reports(runs_dir, 2, runs_dir / run_id(5)) == [run_id(1), run_id(2), run_id(3)]
    assert remaining(runs_dir) == [run_id(4), run_id(5)]
    assert prune_run_reports(runs_dir, 2, runs_dir / run_id(5)) == []


def test_the_run_just_published_is_kept_even_when_newer_ones_exist(runs_dir):
    make_runs(runs_dir, [run_id(day) for day in range(1, 5)])
    prune_run_reports(runs_dir, 1, runs_dir / run_id(2))
    assert remaining(runs_dir) == [run_id(2), run_id(4)]


def test_the_report_latest_points_to_is_kept(runs_dir):
    make_runs(runs_dir, [run_id(day) for day in range(1, 5)])
    publish_latest(runs_dir / run_id(2), runs_dir.parent)  # a run that started earlier published after this one
    prune_run_reports(runs_dir, 1, runs_dir / run_id(3))
    assert remaining(runs_dir) == [run_id(2), run_id(3), run_id(4)]


def test_an_unfinished_run_goes_only_when_it_started_before_a_report_that_goes(runs_dir):
    make_runs(runs_dir, [run_id(2), run_id(3), run_id(5)], unfinished=[run_id(1), run_id(4), run_id(6)])
    prune_run_reports(runs_dir, 2, runs_dir / run_id(5))
    # Day 1 failed long ago; days 4 and 6 may still be running beside the run that published day 5.
    assert remaining(runs_dir) == [run_id(3), run_id(4), run_id(5), run_id(6)]


def test_runs_started_together_keep_the_folders_of_those_still_running(runs_dir):
    make_runs(runs_dir, [run_id(3)], unfinished=[run_id(1), run_id(2), run_id(4)])
    assert prune_run_reports(runs_dir, 1, runs_dir / run_id(3)) == []
    assert remaining(runs_dir) == [run_id(day) for day in range(1, 5)]


def test_other_folders_and_files_are_left_alone_and_a_cut_short_removal_is_finished(runs_dir):
    make_runs(runs_dir, [run_id(1), run_id(2)])
    (runs_dir / "notes").mkdir()
    (runs_dir / "README.txt").write_text("mine")
    (runs_dir / f".removing-{run_id(0)}").mkdir()
    prune_run_reports(runs_dir, 1, runs_dir / run_id(2))
    assert remaining(runs_dir) == sorted(["README.txt", "notes", run_id(2)])
