"""Where an export is written before it is put in place, so a failed or killed export leaves nothing.

Every export is written and checked in a private folder under the system temp directory
(``TMPDIR``), never next to ``--out``. Only a passed check publishes it: missing parent folders
are created then, and the result is renamed onto ``--out`` (on another file system it is first
copied to a hidden sibling, then renamed). So a failed check, an error or a ``kill -9`` during the
export leaves neither ``--out``, nor a temp file beside it, nor parent folders it created.

``check_target`` refuses, before any work, an ``--out`` that can never be written: a folder where
a file is wanted, a non-empty folder or a file where a folder is wanted, a path under a file, and an
existing file unless the user said to overwrite it (then it is replaced atomically).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from igpg_zoo.errors import ConfigError

SIDE_SUFFIXES = (".data",)  # companions published with a file: an ONNX model's external data


def check_target(out: Path, folder: bool, overwrite: bool = False) -> None:
    """Raise ConfigError (one line, what to do) unless ``out`` can receive a file / a folder."""
    out = Path(out)
    if not folder and not overwrite:
        for path in (out, *_side_files(out)):
            if path.is_file() or path.is_symlink():
                _refuse_existing(path)
    if folder and out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"{out} already exists and is not an empty folder; choose another --out or remove it")
    if not folder and out.is_dir():
        raise ConfigError(f"{out} is a folder; give a file path for --out (or a path without the suffix "
                          "to get a folder with the default file name)")
    ancestor = out.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if ancestor.exists() and not ancestor.is_dir():
        raise ConfigError(f"{ancestor} is a file, so {out} cannot be created under it; choose another --out")


def _side_files(out: Path) -> list[Path]:
    return [out.with_name(out.name + suffix) for suffix in SIDE_SUFFIXES]


def _refuse_existing(out: Path) -> None:
    raise ConfigError(f"{out} already exists; pass --overwrite to replace it, or choose another --out")


@contextlib.contextmanager
def staged(out: Path, folder: bool = False, overwrite: bool = False) -> Iterator[Path]:
    """Yield a private path named like ``out``; publish it onto ``out`` when the block succeeds.

    Write the file (or folder) at the yielded path, plus any side file ``<name>.data``. An
    exception in the block discards everything; ``out`` and its parents are left untouched. An
    existing file ``out`` is only replaced with ``overwrite``.
    """
    out = Path(out)
    check_target(out, folder, overwrite)
    with tempfile.TemporaryDirectory(prefix="igpg-zoo-export-") as tmp:
        path = Path(tmp) / out.name
        yield path
        publish(path, out, overwrite)


def publish(src: Path, out: Path, overwrite: bool = False) -> None:
    """Move ``src`` (and its side files) onto ``out`` with usual permissions; undo it all on failure.
    A file that appeared at ``out`` while the export ran is only replaced with ``overwrite``."""
    if not src.is_dir():
        check_target(out, folder=False, overwrite=overwrite)  # a file may have appeared while it ran
    created = _make_parents(out.parent)
    moved: list[Path] = []
    try:
        _normalise_modes(src)
        for side, dst in zip(_side_files(src), _side_files(out)):
            if side.exists():
                _normalise_modes(side)
                _move(side, dst)
                moved.append(dst)
        _move(src, out)
    except BaseException as exc:
        for path in moved:
            path.unlink(missing_ok=True)
        _remove_folders(created)
        if isinstance(exc, OSError):
            raise ConfigError(f"cannot write {out} ({exc.strerror or exc}); choose another --out "
                              "or check the folder's permissions") from None
        raise
    for dst in _side_files(out):
        if dst not in moved and dst.is_file():  # an overwritten export's side file no longer belongs to it
            dst.unlink()


def _make_parents(parent: Path) -> list[Path]:
    """Create ``parent`` and missing ancestors; return the folders created, outermost first.

    On a failure the folders created so far are removed again and ConfigError names ``parent``.
    """
    missing, folder = [], parent
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    created = []
    try:
        for folder in reversed(missing):
            folder.mkdir()
            created.append(folder)
    except BaseException as exc:
        _remove_folders(created)
        if isinstance(exc, OSError):
            raise ConfigError(f"cannot create folder {parent} ({exc.strerror or exc}); choose another --out "
                              "or check the permissions") from None
        raise
    return created


def _remove_folders(created: list[Path]) -> None:
    """Remove the folders an export created (outermost first in ``created``), innermost first."""
    for folder in reversed(created):
        with contextlib.suppress(OSError):
            folder.rmdir()


def _move(src: Path, dst: Path) -> None:
    """Rename ``src`` onto ``dst`` atomically; across file systems through a hidden sibling of ``dst``."""
    try:
        os.replace(src, dst)
        return
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
    sibling = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    try:
        if src.is_dir():
            shutil.copytree(src, sibling)
        else:
            shutil.copy2(src, sibling)
        os.replace(sibling, dst)
    finally:
        if sibling.is_dir():
            shutil.rmtree(sibling, ignore_errors=True)
        else:
            sibling.unlink(missing_ok=True)


def _normalise_modes(path: Path) -> None:
    """Private temp modes (0600 from safetensors, 0700 folders) become the umask's usual modes."""
    umask = os.umask(0)
    os.umask(umask)
    paths = [path, *path.rglob("*")] if path.is_dir() else [path]
    for p in paths:
        os.chmod(p, (0o777 if p.is_dir() else 0o666) & ~umask)
