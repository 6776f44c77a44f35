"""The model registry: `models/registry.json` lists every registered model version and names the champion.

The champion is a field of that one file, and the file is replaced with a single atomic rename, so a crash
leaves either the old registry (old champion) or the new one, never a half-promoted model. Writers hold an
exclusive lock on `models/.registry.lock`, so concurrent runs register one after the other.
"""

from __future__ import annotations

import fcntl
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.core import storage
from tasks.core.errors import RegistryError
from tasks.core.records import ModelVersion
from tasks.core.settings import PROJECT_ROOT

REGISTRY_FILE = "registry.json"
LOCK_FILE = ".registry.lock"


@dataclass
class Registry:
    champion: int | None = None
    versions: list[ModelVersion] = field(default_factory=list)

    def get(self, version: int) -> ModelVersion:
        return next(entry for entry in self.versions if entry.version == version)

    def find_model(self, model_dir: str) -> ModelVersion | None:
        return next((entry for entry in self.versions if entry.model_dir == model_dir), None)

    def next_version(self) -> int:
        return max((entry.version for entry in self.versions), default=0) + 1

    def to_json(self) -> dict[str, Any]:
        return {"champion": self.champion, "versions": [asdict(entry) for entry in self.versions]}


def read_registry(models_dir: Path) -> Registry:
    path = models_dir / REGISTRY_FILE
    if not path.exists():
        return Registry()
    payload = storage.read_json(path)
    return Registry(payload["champion"], [ModelVersion(**entry) for entry in payload["versions"]])


def write_registry(models_dir: Path, registry: Registry) -> Path:
    """Replace registry.json in one rename (call with the lock held)."""
    return storage.write_json(models_dir / REGISTRY_FILE, registry.to_json())


@contextmanager
def registry_lock(models_dir: Path) -> Iterator[None]:
    """Exclusive lock over read-decide-write of the registry; released when the holder exits or dies."""
    models_dir.mkdir(parents=True, exist_ok=True)
    with open(models_dir / LOCK_FILE, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def champion(models_dir: Path) -> ModelVersion:
    registry = read_registry(models_dir)
    if registry.champion is None:
        raise RegistryError(f"{models_dir / REGISTRY_FILE}: no champion model yet; run the train-pm25 flow first")
    return registry.get(registry.champion)


def code_version() -> str:
    """The package version and, in a git checkout, the commit (with `+dirty` when files differ from it)."""
    version = metadata.version("pm25-pipeline")
    try:
        commit = subprocess.run(["git", "-C", str(PROJECT_ROOT), "rev-parse", "--short=12", "HEAD"],
                                capture_output=True, text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(PROJECT_ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return version
    return f"{version}+g{commit}{'.dirty' if dirty else ''}"


@task(cache_policy=NO_CACHE, name="champion", task_run_name="find the champion")
def champion_task(models_dir: Path) -> ModelVersion:
    return champion(models_dir)
