"""Model registry and champion promotion, with real Keras models derived from a real training run."""

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from pm25.cli import main
from tasks.core.errors import RegistryError
from tasks.core.home import MODEL_FILE
from tasks.core.settings import TEST_DAYS
from tasks.model.predict import newest_span_forecast
from tasks.model.train import load_model
from tasks.operate.promote import Candidate, Challenge, register_and_promote
from tasks.operate.registry import REGISTRY_FILE, champion, read_registry


def derived_model(trained_dir: Path, models_dir: Path, name: str, change_bias: float | None) -> Path:
    """A copy of the trained model folder whose members' output layers are replaced: a constant change of
    `change_bias` (standardised units) per hour ahead, or the original weights when None."""
    target = models_dir / name
    shutil.copytree(trained_dir, target)
    if change_bias is not None:
        model = load_model(target / MODEL_FILE)
        heads = [layer for layer in model.layers if layer.name.endswith("change_per_horizon")]
        assert heads
        for head in heads:
            kernel, bias = head.get_weights()
            head.set_weights([np.zeros_like(kernel), np.full_like(bias, change_bias)])
        model.save(str(target / MODEL_FILE))
    return target


@pytest.fixture()
def candidates(trained_home, tmp_path):
    home, result = trained_home
    trained_dir = Path(result["model"]).parent
    models_dir = tmp_path / "models"
    models_dir.mkdir()
    return {
        "models_dir": models_dir,
        "dataset_path": Path(result["dataset"]),
        "metrics_path": home / "reports" / "latest" / "metrics.json",
        "bad": derived_model(trained_dir, models_dir, "bad", change_bias=3.0),  # always +3 σ: far too high
        "trained": derived_model(trained_dir, models_dir, "trained", change_bias=None),
        "persistence": derived_model(trained_dir, models_dir, "persistence", change_bias=0.0),  # no change
    }


def register(candidates, name: str):
    candidate = Candidate(candidates[name], f"run-{name}", "sha", {"seed": 42}, candidates["metrics_path"])
    return register_and_promote(candidates["models_dir"], candidate,
                                Challenge(candidates["dataset_path"], TEST_DAYS, newest_span_forecast))


def test_better_challenger_is_promoted_and_worse_one_is_kept_as_rejected(candidates):
    first = register(candidates, "bad")
    assert first.challenge["promoted"] and first.challenge["reason"] == "no champion yet"
    better = register(candidates, "trained")
    assert better.challenge["promoted"] and better.challenge["challenger"] < better.challenge["champion"]
    worse = register(candidates, "persistence")
    assert not worse.challenge["promoted"] and worse.challenge["champion_version"] == better.version
    assert worse.challenge["challenger"] > worse.challenge["champion"]
    registry = read_registry(candidates["models_dir"])
    assert registry.champion == better.version == 2
    assert [entry.model_dir for entry in registry.versions] == ["bad", "trained", "persistence"]
    assert champion(candidates["models_dir"]).model_dir == "trained"
    assert worse.challenge["span_start"].startswith("2014-01-01T00:00") and worse.challenge["cells"] > 200_000


def test_a_champion_from_an_earlier_pipeline_version_is_replaced_not_scored(candidates):
    register(candidates, "bad")
    (candidates["bad"] / "network.json").unlink()  # as a model folder made before the network
    replaced = register(candidates, "trained")
    assert replaced.challenge["promoted"] and "earlier pipeline version" in replaced.challenge["reason"]
    assert champion(candidates["models_dir"]).model_dir == "trained"


def test_registering_the_same_model_again_changes_nothing(candidates):
    first = register(candidates, "trained")
    before = (candidates["models_dir"] / REGISTRY_FILE).read_bytes()
    assert register(candidates, "trained") == first
    assert (candidates["models_dir"] / REGISTRY_FILE).read_bytes() == before


def test_crash_while_promoting_leaves_the_old_champion(candidates, monkeypatch):
    register(candidates, "bad")
    before = (candidates["models_dir"] / REGISTRY_FILE).read_bytes()

    def crash(source, destination):
        raise OSError("simulated crash at the moment of the rename")

    with monkeypatch.context() as patched:
        patched.setattr(os, "replace", crash)
        with pytest.raises(OSError, match="simulated crash"):
            register(candidates, "trained")
    assert (candidates["models_dir"] / REGISTRY_FILE).read_bytes() == before
    assert champion(candidates["models_dir"]).model_dir == "bad"
    assert not [path for path in candidates["models_dir"].iterdir() if path.name.startswith(f".{REGISTRY_FILE}")]
    assert register(candidates, "trained").challenge["promoted"]  # the next attempt promotes it


def test_no_champion_is_a_clear_error(tmp_path):
    with pytest.raises(RegistryError, match="no champion model yet"):
        champion(tmp_path)


def test_models_command_marks_the_champion(candidates, capsys):
    register(candidates, "bad")
    register(candidates, "trained")
    home = candidates["models_dir"].parent
    assert main(["models", "--home", str(home)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "champion v2 forecasts: US_Embassy"
    assert lines[2].startswith("  ") and "v1" in lines[2] and "no champion yet" in lines[2]
    assert lines[3].startswith("*") and "v2" in lines[3] and "beats champion v1" in lines[3]
    assert main(["models", "--home", str(home), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["champion"] == 2
