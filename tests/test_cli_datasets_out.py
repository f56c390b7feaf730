"""``igpg-zoo datasets TASK --out FILE.npz`` writes a task where ``--data`` reads it back, and nothing else."""

from __future__ import annotations

import json

import numpy as np
import pytest


def test_a_written_task_reads_back_as_user_data(cli, tmp_path):
    out = tmp_path / "sample.npz"
    result = cli("datasets", "digits[classes=4,6,9][rot=90]", "--out", out, "--json")
    assert result.exit_code == 0, result.stderr
    written = json.loads(result.stdout)
    with np.load(out) as z:
        assert sorted(z.files) == ["x", "x_test", "y", "y_test"]
        assert len(z["y"]) == written["train"] and len(z["y_test"]) == written["test"]
    back = json.loads(cli("datasets", "--data", out, "--json").stdout)
    assert (back["n_classes"], back["input_shape"], back["train"]) == (3, [1, 8, 8], written["train"])


@pytest.mark.parametrize("args, message", [
    (["--out", "{tmp}/x.npz"], "--out needs a task"),
    (["digits", "--out", "{tmp}/x.csv"], "name a .npz file"),
    (["digits", "--out", "{tmp}/taken.npz"], "exists; remove it"),
])
def test_bad_out_is_one_line_and_writes_nothing(cli, tmp_path, args, message):
    (tmp_path / "taken.npz").write_bytes(b"keep")
    before = sorted(p.name for p in tmp_path.iterdir())
    result = cli("datasets", *[a.format(tmp=tmp_path) for a in args])
    assert result.exit_code == 1 and message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == before and (tmp_path / "taken.npz").read_bytes() == b"keep"
