"""Keeping the newest run reports: which folders a finished run removes under reports/runs/."""

from pathlib import Path

from tasks.report import REPORT_FILE, prune_run_reports


def make_runs(runs_dir: Path, complete: list[str], unfinished: list[str] = ()) -> None:
    for name in complete:
        (runs_dir / name).mkdir(parents=True)
        (runs_dir / name / "predictions.parquet").write_bytes(b"x")
        (runs_dir / name / REPORT_FILE).write_text("# report")
    for name in unfinished:
        (runs_dir / name).mkdir(parents=True)
        (runs_dir / name / "metrics.json").write_text("{}")


def run_id(day: int) -> str:
    return f"202611{day:02d}T020000Z-{day:08x}"


def remaining(runs_dir: Path) -> list[str]:
    return sorted(path.name for path in runs_dir.iterdir())


def test_the_newest_complete_reports_are_kept(tmp_path):
    make_runs(tmp_path, [run_id(day) for day in range(1, 6)])
    assert prune_run_reports(tmp_path, 2, tmp_path / run_id(5)) == [run_id(1), run_id(2), run_id(3)]
    assert remaining(tmp_path) == [run_id(4), run_id(5)]
    assert prune_run_reports(tmp_path, 2, tmp_path / run_id(5)) == []


def test_the_run_just_published_is_kept_even_when_newer_ones_exist(tmp_path):
    make_runs(tmp_path, [run_id(day) for day in range(1, 5)])
    prune_run_reports(tmp_path, 1, tmp_path / run_id(2))
    assert remaining(tmp_path) == [run_id(2), run_id(4)]


def test_an_unfinished_run_goes_only_when_it_started_before_a_report_that_goes(tmp_path):
    make_runs(tmp_path, [run_id(2), run_id(3), run_id(5)], unfinished=[run_id(1), run_id(4), run_id(6)])
    prune_run_reports(tmp_path, 2, tmp_path / run_id(5))
    # Day 1 failed long ago; days 4 and 6 may still be running beside the run that published day 5.
    assert remaining(tmp_path) == [run_id(3), run_id(4), run_id(5), run_id(6)]


def test_runs_started_together_keep_the_folders_of_those_still_running(tmp_path):
    make_runs(tmp_path, [run_id(3)], unfinished=[run_id(1), run_id(2), run_id(4)])
    assert prune_run_reports(tmp_path, 1, tmp_path / run_id(3)) == []
    assert remaining(tmp_path) == [run_id(day) for day in range(1, 5)]


def test_other_folders_and_files_are_left_alone_and_a_cut_short_removal_is_finished(tmp_path):
    make_runs(tmp_path, [run_id(1), run_id(2)])
    (tmp_path / "notes").mkdir()
    (tmp_path / "README.txt").write_text("mine")
    (tmp_path / f".removing-{run_id(0)}").mkdir()
    prune_run_reports(tmp_path, 1, tmp_path / run_id(2))
    assert remaining(tmp_path) == sorted(["README.txt", "notes", run_id(2)])
