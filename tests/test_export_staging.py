"""A failed, refused or killed export leaves nothing: no --out, no temp file beside it, no parent folders.

Exports are written and checked under the system temp folder and only published when the check
passed (igpg_zoo/export/staging.py). Real files, real onnxruntime, a real SIGKILL.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from igpg_zoo.adapters import get_adapter, register_adapter, unregister_adapter
from igpg_zoo.adapters.base import Adapter
from igpg_zoo.errors import ConfigError, ExportParityError
from igpg_zoo.export import export_weights
from igpg_zoo.export.onnx import to_onnx

ARCH = "cnn-i1x8x8-c4k3-o3-bn"


class _Noisy(nn.Linear):
    """Adds a constant only in eager mode: the ONNX graph cannot match, so the check fails."""

    def forward(self, x):
        y = super().forward(x)
        return y if torch.jit.is_tracing() or torch.compiler.is_compiling() else y + 1e-2


class _LossyAdapter(Adapter):
    """Writes its folder, but reads it back with perturbed weights: the folder check fails."""

    name = "lossy-staging"
    test_arch = "lossy-staging-3"
    export_formats = ("native",)

    def supports(self, arch: str) -> bool:
        return arch == self.test_arch

    def build(self, arch: str) -> nn.Module:
        return nn.Linear(3, 2).eval()

    def example_input(self, arch: str) -> torch.Tensor:
        return torch.zeros(2, 3)

    def read_native(self, path: Path):
        from safetensors.torch import load_file

        return self.test_arch, {k: v + 0.5 for k, v in load_file(str(Path(path) / "model.safetensors")).items()}


def _weights() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return get_adapter(ARCH).build(ARCH).state_dict()


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


# (format, --out relative to tmp_path, what is there before, message)
REFUSED = [
    ("onnx", "taken.onnx", "folder", "taken.onnx is a folder; give a file path"),
    ("safetensors", "taken.safetensors", "folder", "is a folder; give a file path"),
    ("onnx", "taken", "file", "taken is a file, so .*model.onnx cannot be created under it"),
    ("onnx", "taken/deeper/m.onnx", "file", "taken is a file, so .*m.onnx cannot be created"),
    ("native", "taken/n", "file", "taken is a file, so .*n cannot be created"),
    ("native", "taken", "file", "already exists and is not an empty folder"),
    ("native", "taken", "full-folder", "already exists and is not an empty folder"),
]


def _created(folder):
    """What an export left in ``folder``, apart from the libraries' cache (conftest points XDG_CACHE_HOME there)."""
    return [p for p in folder.iterdir() if p.name != ".cache"]


@pytest.mark.parametrize("fmt,out,before,words", REFUSED)
def test_an_out_that_cannot_be_written_is_refused_before_any_work(tmp_path, fmt, out, before, words):
    work = tmp_path / "work"
    work.mkdir()
    taken = work / out.split("/")[0]
    if before == "file":
        taken.write_text("mine")
    else:
        taken.mkdir()
        if before == "full-folder":
            (taken / "keep.txt").write_text("mine")
    snapshot = _tree(work)
    with pytest.raises(ConfigError, match=words):
        export_weights(ARCH, _weights(), fmt, work / out)
    assert _tree(work) == snapshot


@pytest.mark.parametrize("atol", [-1.0, float("nan"), float("inf")])
def test_a_meaningless_tolerance_is_refused(tmp_path, atol):
    with pytest.raises(ConfigError, match="--atol must be a finite number >= 0"):
        export_weights(ARCH, _weights(), "onnx", tmp_path / "m.onnx", atol=atol)
    assert _created(tmp_path) == []


def test_a_failed_onnx_check_creates_no_parent_folders(tmp_path):
    with pytest.raises(ExportParityError, match="nothing was written"):
        to_onnx(_Noisy(5, 2), torch.randn(2, 5), tmp_path / "new" / "deeper" / "m.onnx")
    assert _created(tmp_path) == []


def test_a_failed_folder_check_creates_no_parent_folders(tmp_path):
    register_adapter(_LossyAdapter())
    try:
        with pytest.raises(ExportParityError):
            export_weights("lossy-staging-3", nn.Linear(3, 2).state_dict(), "native", tmp_path / "new" / "out")
    finally:
        unregister_adapter("lossy-staging")
    assert _created(tmp_path) == []


@pytest.mark.parametrize("fmt,out,files", [
    ("onnx", "a/b/m.onnx", ["a/b/m.onnx"]),
    ("safetensors", "s", ["s/model.safetensors"]),
    ("native", "a/n", ["a/n/igpg-zoo.json", "a/n/model.safetensors"]),
])
def test_published_exports_have_the_usual_permissions(tmp_path, fmt, out, files):
    export_weights(ARCH, _weights(), fmt, tmp_path / out)
    umask = os.umask(0)
    os.umask(umask)
    for name in files:  # safetensors writes 0600 and temp folders are 0700; the published tree is not
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~umask, name
    assert not [p for p in tmp_path.rglob(".*")]  # no hidden temp files beside the output


def test_publishing_across_file_systems(tmp_path, monkeypatch):
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev or not os.access(shm, os.W_OK):
        pytest.skip("needs a writable /dev/shm on another file system")
    monkeypatch.setattr(tempfile, "tempdir", str(shm))
    export_weights(ARCH, _weights(), "onnx", tmp_path / "m.onnx")
    export_weights(ARCH, _weights(), "native", tmp_path / "n")
    assert _tree(tmp_path) == ["m.onnx", "n", "n/igpg-zoo.json", "n/model.safetensors"]


KILLED = textwrap.dedent("""
    import os, signal, sys, torch
    from torch import nn
    from igpg_zoo.export.onnx import to_onnx

    class DiesDuringTheCheck(nn.Linear):
        def forward(self, x):  # traced at batch 2, checked at batches 1 and 3
            if x.shape[0] == 3 and not torch.jit.is_tracing():
                os.kill(os.getpid(), signal.SIGKILL)
            return super().forward(x)

    to_onnx(DiesDuringTheCheck(5, 2), torch.randn(2, 5), sys.argv[1])
""")


def test_kill_9_during_the_check_leaves_nothing_where_the_output_goes(tmp_path):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    out_dir = tmp_path / "exports"
    out_dir.mkdir()
    env = {**os.environ, "TMPDIR": str(scratch)}
    proc = subprocess.run([sys.executable, "-c", KILLED, str(out_dir / "sub" / "m.onnx")], env=env,
                          capture_output=True, timeout=300)
    assert proc.returncode == -9, proc.stderr.decode()[-500:]
    assert list(out_dir.iterdir()) == []  # no m.onnx, no sub/, no hidden temp file
    # the debris is in TMPDIR (beside whatever else the exporter's libraries put there)
    assert any(p.name.startswith("igpg-zoo-export-") for p in scratch.iterdir()), list(scratch.iterdir())


# (format, --out relative to tmp_path, the file the export would replace)
EXISTING = [
    ("onnx", "m.onnx", "m.onnx"),
    ("safetensors", "m.safetensors", "m.safetensors"),
    ("onnx", "dir", "dir/model.onnx"),
    ("safetensors", "dir", "dir/model.safetensors"),
]


@pytest.mark.parametrize("fmt,out,existing", EXISTING)
def test_an_existing_file_is_replaced_only_when_asked(tmp_path, fmt, out, existing):
    path = tmp_path / existing
    path.parent.mkdir(exist_ok=True)
    path.write_text("mine")
    with pytest.raises(ConfigError, match=f"{path} already exists; pass --overwrite to replace it"):
        export_weights(ARCH, _weights(), fmt, tmp_path / out)
    assert path.read_text() == "mine" and _tree(tmp_path) == sorted({existing, *[existing.split("/")[0]]})
    report = export_weights(ARCH, _weights(), fmt, tmp_path / out, overwrite=True)
    assert report.path == path and path.read_bytes()[:4] != b"mine"


def test_a_file_that_appears_while_the_export_runs_is_not_replaced(tmp_path):
    from igpg_zoo.export.staging import staged

    out = tmp_path / "m.safetensors"
    with pytest.raises(ConfigError, match="already exists; pass --overwrite"):
        with staged(out) as tmp:
            tmp.write_text("export")
            out.write_text("someone else's")  # written after the up-front check
    assert out.read_text() == "someone else's" and _created(tmp_path) == [out]


def test_a_side_file_counts_as_existing_and_a_stale_one_goes_with_overwrite(tmp_path):
    side = tmp_path / "m.onnx.data"  # what an earlier export of a model over 2 GB left beside m.onnx
    side.write_text("old external data")
    with pytest.raises(ConfigError, match="m.onnx.data already exists; pass --overwrite"):
        export_weights(ARCH, _weights(), "onnx", tmp_path / "m.onnx")
    assert _created(tmp_path) == [side]
    export_weights(ARCH, _weights(), "onnx", tmp_path / "m.onnx", overwrite=True)
    assert not side.exists() and (tmp_path / "m.onnx").is_file()  # the new model is self-contained


def test_an_unknown_format_is_named_before_the_out_path_is_judged(tmp_path):
    from igpg_zoo.export.weights import check_out

    (tmp_path / "w.onnx").write_text("mine")
    with pytest.raises(ConfigError, match="unknown export format 'ONNX'"):
        check_out("ONNX", tmp_path / "w.onnx")
