"""TimmAdapter: any timm architecture as an igpg-zoo architecture string.

timm (and torch) are imported inside methods only, so ``igpg-zoo adapters`` and discovery stay
light; the first call that needs timm pays its ~6 s import.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from igpg_zoo.adapters.base import Adapter
from igpg_zoo.errors import UnknownArchitecture
from igpg_zoo.records import ParamSpec
from igpg_zoo_timm.arch import TimmArch, is_timm_arch, parse_arch

if TYPE_CHECKING:
    import torch
    from torch import nn

DEFAULT_INPUT = (3, 224, 224)  # timm's own default when a model has no pretrained config


def _create_kwargs(spec: TimmArch) -> dict[str, Any]:
    """Keyword arguments for ``timm.create_model``: img_size goes only to models that take it."""
    from timm.models import resolve_model_input_args

    args = {"img_size": spec.img_size} if spec.img_size else None
    return resolve_model_input_args(spec.model, args=args, **spec.model_kwargs())


@dataclass(frozen=True)
class _Facts:
    """What the adapter reports about an arch, computed from one build (timm models take 0.05-1 s)."""

    layout: tuple[ParamSpec, ...]
    heads: tuple[str, ...]
    module_class: str
    num_classes: int
    counts: tuple[tuple[str, int], ...]
    n_params: int
    max_width: int


@functools.lru_cache(maxsize=256)
def _facts(arch: str) -> _Facts:
    module = TimmAdapter().build(arch)
    params = list(module.named_parameters())
    classifier = module.pretrained_cfg.get("classifier")
    prefixes = [classifier] if isinstance(classifier, str) else list(classifier or ())
    heads = tuple(n for n, _ in params if any(n.startswith(p + ".") for p in prefixes))
    return _Facts(
        layout=tuple(ParamSpec(n, tuple(p.shape)) for n, p in params),
        heads=heads, module_class=type(module).__name__, num_classes=int(module.num_classes),
        counts=tuple(_layer_counts(module).items()), n_params=sum(p.numel() for _, p in params),
        max_width=max((p.shape[0] for _, p in params if p.dim() >= 2), default=0),
    )


class TimmAdapter(Adapter):
    """``timm/<model>?num_classes=N&in_chans=C&img_size=S``; folders timm's ``local-dir:`` loads."""

    name = "timm"
    test_arch = "timm/test_resnet?num_classes=10&in_chans=1&img_size=32"
    export_formats = ("onnx", "native")

    def supports(self, arch: str) -> bool:
        """A ``timm/`` string naming a model timm knows (a malformed option list raises in build)."""
        if not is_timm_arch(arch):
            return False
        import timm

        model = arch[len("timm/"):].partition("?")[0]
        return bool(model) and timm.is_model(model)

    def canonical_arch(self, arch: str) -> str:
        """Options in the order num_classes, in_chans, img_size, global_pool; square sizes as one number."""
        return self.parse(arch).to_arch()

    def parse(self, arch: str) -> TimmArch:
        import timm

        spec = parse_arch(arch)
        if not timm.is_model(spec.model):
            raise UnknownArchitecture(f"timm has no model '{spec.model}' (timm {timm.__version__}); "
                                      "list names with python -c \"import timm; print(timm.list_models('*res*'))\"")
        return spec

    def build(self, arch: str) -> nn.Module:
        """The module; options timm rejects (``global_pool=bogus``) are a one-line UnknownArchitecture."""
        import timm

        spec = self.parse(arch)
        try:
            return timm.create_model(**_create_kwargs(spec)).eval()
        except (AssertionError, TypeError, ValueError, KeyError, RuntimeError, NotImplementedError) as exc:
            why = (str(exc).strip().splitlines() or [""])[0][:200]
            raise UnknownArchitecture(f"timm cannot build '{arch}' ({type(exc).__name__}: {why}); "
                                      "fix the options (docs/adapters.md: num_classes, in_chans, img_size, "
                                      "global_pool)") from None

    def input_size(self, arch: str) -> tuple[int, int, int]:
        """(C, H, W) of the model's input: the string's options over timm's pretrained config."""
        from timm.models import get_pretrained_cfg

        spec = self.parse(arch)
        cfg = get_pretrained_cfg(spec.model)
        c, h, w = tuple(cfg.input_size) if cfg is not None and cfg.input_size else DEFAULT_INPUT
        c = spec.in_chans or c
        h, w = spec.img_size or (h, w)
        return c, h, w

    def param_layout(self, arch: str) -> list[ParamSpec]:
        return list(_facts(arch).layout)

    def head_names(self, arch: str) -> list[str]:
        """The parameters of the module(s) timm's pretrained config names as ``classifier``."""
        heads = _facts(arch).heads
        return list(heads) if heads else super().head_names(arch)

    def describe(self, arch: str) -> str:
        spec, facts = self.parse(arch), _facts(arch)
        c, h, w = self.input_size(arch)
        layers = ", ".join(f"{v} {k}" for k, v in facts.counts if v)
        return (f"timm model {spec.model} ({facts.module_class}) for image input {c}x{h}x{w}; "
                f"{facts.num_classes} classes; layers: {layers}; {facts.n_params:,} parameters")

    def structure(self, arch: str) -> dict[str, float]:
        """Same keys for every timm arch: sizes, layer counts, widest layer, parameter count."""
        facts = _facts(arch)
        c, h, w = self.input_size(arch)
        counts = dict(facts.counts)
        return {
            "input_channels": float(c), "input_height": float(h), "input_width": float(w),
            "n_classes": float(facts.num_classes), "n_conv": float(counts["conv"]),
            "n_linear": float(counts["linear"]), "n_norm": float(counts["norm"]),
            "n_attention": float(counts["attention"]), "n_tensors": float(len(facts.layout)),
            "max_width": float(facts.max_width), "n_params": float(facts.n_params),
            "log10_params": math.log10(max(facts.n_params, 1)),
        }

    def example_input(self, arch: str) -> torch.Tensor:
        import torch

        gen = torch.Generator().manual_seed(0)
        return torch.randn((2, *self.input_size(arch)), generator=gen)  # (B, C, H, W)

    def write_checkpoint(self, arch: str, weights: dict[str, Any], out: Path, meta: dict[str, Any]) -> Path:
        """A folder timm loads: ``create_model('local-dir:OUT', pretrained=True)``."""
        from igpg_zoo_timm.folder import write_timm_folder

        module = self.build(arch)
        module.load_state_dict(weights, strict=True)
        return write_timm_folder(module, arch, self.input_size(arch), Path(out), meta)

    def read_native(self, path: Path) -> tuple[str, dict[str, torch.Tensor]] | None:
        """(arch, weights) of a timm folder (config.json + model.safetensors / pytorch_model.bin)."""
        from igpg_zoo_timm.folder import read_timm_folder

        return read_timm_folder(Path(path))

    def read_native_meta(self, path: Path) -> dict[str, Any]:
        """The meta igpg-zoo wrote into the folder's config.json (key ``igpg_zoo``); {} for other folders."""
        from igpg_zoo_timm.folder import read_our_meta

        return read_our_meta(Path(path))


def _layer_counts(module: nn.Module) -> dict[str, int]:
    from torch import nn

    counts = {"conv": 0, "linear": 0, "norm": 0, "attention": 0}
    for m in module.modules():
        if isinstance(m, nn.modules.conv._ConvNd):
            counts["conv"] += 1
        elif isinstance(m, nn.Linear):
            counts["linear"] += 1
        elif isinstance(m, (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)):
            counts["norm"] += 1
        elif "Attention" in type(m).__name__:
            counts["attention"] += 1
    return counts