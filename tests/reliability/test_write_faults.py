"""A write that fails halfway leaves no partial file where a reader would take it for whole.

The disk-full case is real: a child process writes under RLIMIT_FSIZE, so the kernel refuses the bytes
past the limit (EFBIG) in the middle of the write, exactly where a full disk would (ENOSPC).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

from tasks.core import storage
from tasks.core.settings import PROJECT_ROOT

LIMIT_BYTES = 64 * 1024


def write_under_file_size_limit(code: str) -> subprocess.CompletedProcess:
    """Run `code` (with `storage` imported) in a child whose files may not grow past LIMIT_BYTES."""
    prologue = textwrap.dedent(f"""
        import resource
        resource.setrlimit(resource.RLIMIT_FSIZE, ({LIMIT_BYTES}, {LIMIT_BYTES}))
        from pathlib import Path
        import numpy as np, pandas as pd
        from tasks.core import storage
    """)
    return subprocess.run([sys.executable, "-c", prologue + textwrap.dedent(code)], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=120)


def leftovers(folder):
    return sorted(path.name for path in folder.iterdir() if path.name.startswith("."))


@pytest.mark.parametrize("writer", [
    "storage.write_parquet(target, pd.DataFrame({'x': np.random.default_rng(0).random(200_000)}))",
    "storage.write_json(target, {'values': list(range(100_000))})",
    "storage.write_bytes(target, b'x' * 1_000_000)",
])
def test_disk_full_halfway_keeps_the_previous_file_whole(writer, tmp_path):
    target = tmp_path / "output.bin"
    storage.write_json(target, {"previous": "run"})
    done = write_under_file_size_limit(f"target = Path({str(target)!r})\n{writer}")
    assert done.returncode != 0 and "File too large" in done.stderr, done.stderr[-2000:]
    assert json.loads(target.read_text()) == {"previous": "run"}
    assert leftovers(tmp_path) == []


def test_disk_full_while_saving_a_keras_model_leaves_no_model_file(tmp_path):
    done = write_under_file_size_limit(f"""
        import keras
        inputs = keras.Input(shape=(24, 17))
        model = keras.Model(inputs, keras.layers.Dense(24)(keras.layers.LSTM(200)(inputs)))
        target = Path({str(tmp_path / 'model.keras')!r})
        storage.write_atomically(target, lambda path: model.save(str(path)))
    """)
    assert done.returncode != 0 and "File too large" in done.stderr, done.stderr[-2000:]
    assert not (tmp_path / "model.keras").exists() and leftovers(tmp_path) == []


def test_permission_denied_halfway_keeps_the_previous_file_whole(tmp_path):
    target = tmp_path / "metrics.json"
    storage.write_json(target, {"previous": "run"})

    def denied_after_half(path):
        path.write_text('{"half": ')
        raise PermissionError(13, "Permission denied", str(path))

    with pytest.raises(PermissionError):
        storage.write_atomically(target, denied_after_half)
    assert json.loads(target.read_text()) == {"previous": "run"} and leftovers(tmp_path) == []


def test_a_reader_sees_the_old_or_the_new_file_never_a_mix(tmp_path):
    target = tmp_path / "table.parquet"
    old, new = pd.DataFrame({"v": np.zeros(50_000)}), pd.DataFrame({"v": np.ones(50_000)})
    storage.write_parquet(target, old)
    reader = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import time, pandas as pd
        seen = set()
        end = time.monotonic() + 3
        while time.monotonic() < end:
            values = pd.read_parquet({str(target)!r})["v"].unique().tolist()
            assert values in ([0.0], [1.0]), values
            seen.add(values[0])
        print(sorted(seen))
    """)], cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for round_ in range(200):
        storage.write_parquet(target, new if round_ % 2 == 0 else old)
    out, err = reader.communicate(timeout=60)
    assert reader.returncode == 0, err[-2000:]
