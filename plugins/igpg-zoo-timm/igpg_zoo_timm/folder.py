"""timm-native folders: ``model.safetensors`` + ``config.json``, as timm's ``save_for_hf`` writes them.

Writing uses timm's own config writer (``save_config_for_hf``), so the folder carries what
``timm.create_model("local-dir:PATH", pretrained=True)`` reads: ``architecture``, top-level
``num_classes``, ``model_args`` (in_chans, img_size, global_pool, ...) and the ``pretrained_cfg``
with ``input_size``, ``mean``/``std``, ``classifier``, ``first_conv``, ``crop_pct``, ...
Reading uses timm's own parser (``load_model_config_from_path``), so we see what timm sees.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from igpg_zoo.errors import CheckpointError, UnknownArchitecture
from igpg_zoo_timm.arch import TimmArch, parse_arch

if TYPE_CHECKING:
    import torch
    from torch import nn

WEIGHTS = ("model.safetensors", "pytorch_model.bin")  # what timm's local-dir loader looks for, in order
CONFIG = "config.json"
OUR_KEY = "igpg_zoo"  # extra top-level config key; timm ignores it


def write_timm_folder(module: nn.Module, arch: str, input_size: tuple[int, int, int], out: Path,
                      meta: dict[str, Any]) -> Path:
    """Write ``module``'s weights and timm config into folder ``out``; returns ``out``."""
    from safetensors.torch import save_file
    from timm.models._hub import save_config_for_hf

    from igpg_zoo.adapters.native_meta import native_meta
    from igpg_zoo.export.single_file import string_metadata

    out.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous().cpu() for k, v in sorted(module.state_dict().items())}
    ours = native_meta(arch, meta)  # arch, dataset, dataset_info (descriptor), meta
    save_config_for_hf(module, str(out / CONFIG), data_config={"input_size": tuple(input_size)},
                       model_config={OUR_KEY: ours})
    save_file(tensors, str(out / WEIGHTS[0]), metadata=string_metadata(arch, meta))  # the label travels
    return out


def read_timm_folder(path: Path) -> tuple[str, dict[str, torch.Tensor]] | None:
    """(arch, weights) when ``path`` is a timm folder, else None."""
    cfg_file = path / CONFIG
    if not path.is_dir() or not cfg_file.is_file():
        return None
    try:
        raw = json.loads(cfg_file.read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read {cfg_file}: {exc}; fix or re-export the folder") from None
    if not isinstance(raw, dict) or "architecture" not in raw:
        return None  # another ecosystem's config.json (e.g. transformers has "architectures")
    arch = _arch_of(path, raw)
    return arch, _read_weights(path)


def read_our_meta(path: Path) -> dict[str, Any]:
    """The caller's meta (plus dataset_info) that write_timm_folder stored; {} when absent."""
    cfg_file = path / CONFIG
    try:
        raw = json.loads(cfg_file.read_text()) if cfg_file.is_file() else {}
    except (OSError, ValueError):
        return {}
    ours = raw.get(OUR_KEY) if isinstance(raw, dict) else None
    if not isinstance(ours, dict):
        return {}
    meta = dict(ours.get("meta") or {})
    if ours.get("dataset_info"):
        meta["dataset_info"] = ours["dataset_info"]
    return meta


def _arch_of(path: Path, raw: dict) -> str:
    """The arch string: ours when we wrote the folder, else rebuilt from timm's view of the config."""
    ours = raw.get(OUR_KEY) or {}
    if isinstance(ours, dict) and isinstance(ours.get("arch"), str):
        spec = parse_arch(ours["arch"])
        if spec.model == raw["architecture"]:
            return spec.to_arch()
    import timm
    from timm.models._hub import load_model_config_from_path

    pretrained_cfg, model_name, model_args = load_model_config_from_path(path)
    if not timm.is_model(model_name):
        raise UnknownArchitecture(f"{path / CONFIG} names architecture '{model_name}', which timm "
                                  f"{timm.__version__} does not know; upgrade timm or fix the config")
    c, h, w = pretrained_cfg.get("input_size") or (None, None, None)
    size = model_args.get("img_size") or ((h, w) if h and w else None)
    size = (size, size) if isinstance(size, int) else (tuple(size) if size else None)
    spec = TimmArch(model_name, num_classes=pretrained_cfg.get("num_classes"),
                    in_chans=model_args.get("in_chans") or c, img_size=size)
    pool = model_args.get("global_pool")
    if pool is not None and pool != _default_pool(spec):
        spec = TimmArch(spec.model, spec.num_classes, spec.in_chans, spec.img_size, pool)
    return spec.to_arch()


def _default_pool(spec: TimmArch) -> str | None:
    """The global pooling a model of ``spec`` gets when the string names none (as timm reports it)."""
    from timm.models._input import _get_global_pool

    from igpg_zoo_timm.adapter import TimmAdapter

    return _get_global_pool(TimmAdapter().build(spec.to_arch()))


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    """The folder's weights through igpg-zoo's safe reader (safetensors, or .bin with weights_only)."""
    from igpg_zoo.registry.checkpoint_io import read_state_dict

    for name in WEIGHTS:
        if (path / name).is_file():
            return read_state_dict(path / name)
    raise CheckpointError(f"timm folder {path} has {CONFIG} but no {' or '.join(WEIGHTS)}; add the weights")
