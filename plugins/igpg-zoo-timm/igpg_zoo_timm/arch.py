"""timm architecture strings: ``timm/<model>[?num_classes=N&in_chans=C&img_size=S|HxW&global_pool=P]``.

Pure string handling (no timm import). Options left out take timm's defaults for the model
(``num_classes`` 1000 for most, ``in_chans`` 3, the pretrained config's input size).
"""

from __future__ import annotations

from dataclasses import dataclass

from igpg_zoo.errors import UnknownArchitecture

PREFIX = "timm/"
OPTIONS = ("num_classes", "in_chans", "img_size", "global_pool")
_HINT = "e.g. timm/test_resnet?num_classes=10&in_chans=1&img_size=32 (see docs/adapters.md)"


@dataclass(frozen=True)
class TimmArch:
    model: str  # a timm model name, optionally with a pretrained tag (resnet18.a1_in1k)
    num_classes: int | None = None
    in_chans: int | None = None
    img_size: tuple[int, int] | None = None  # (H, W)
    global_pool: str | None = None

    def to_arch(self) -> str:
        """The canonical string: options in the order of OPTIONS, square sizes as one number."""
        opts = []
        if self.num_classes is not None:
            opts.append(f"num_classes={self.num_classes}")
        if self.in_chans is not None:
            opts.append(f"in_chans={self.in_chans}")
        if self.img_size is not None:
            h, w = self.img_size
            opts.append(f"img_size={h}" if h == w else f"img_size={h}x{w}")
        if self.global_pool is not None:
            opts.append(f"global_pool={self.global_pool}")
        return PREFIX + self.model + ("?" + "&".join(opts) if opts else "")

    def model_kwargs(self) -> dict:
        """The options as ``timm.create_model`` keyword arguments (None values left out)."""
        kw = {"num_classes": self.num_classes, "in_chans": self.in_chans, "global_pool": self.global_pool}
        return {k: v for k, v in kw.items() if v is not None}


def _bad(arch: str, why: str) -> UnknownArchitecture:
    return UnknownArchitecture(f"bad timm architecture '{arch}': {why}; {_HINT}")


def _positive(arch: str, key: str, value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise _bad(arch, f"option {key}={value!r} must be a positive integer")
    return int(value)


def _size(arch: str, value: str) -> tuple[int, int]:
    parts = value.split("x")
    if len(parts) not in (1, 2):
        raise _bad(arch, f"option img_size={value!r} must be S or HxW")
    sizes = [_positive(arch, "img_size", p) for p in parts]
    return (sizes[0], sizes[-1])


def is_timm_arch(arch: str) -> bool:
    return arch.startswith(PREFIX)


def parse_arch(arch: str) -> TimmArch:
    """Parse ``timm/<model>?opts``; raises UnknownArchitecture on a malformed string (not on an unknown model)."""
    if not is_timm_arch(arch):
        raise _bad(arch, f"it does not start with '{PREFIX}'")
    model, _, query = arch[len(PREFIX):].partition("?")
    if not model or "/" in model or "?" in query:
        raise _bad(arch, f"'{model}' is not a timm model name")
    values: dict = {}
    for item in query.split("&") if query else []:
        key, eq, value = item.partition("=")
        if key not in OPTIONS or not eq:
            raise _bad(arch, f"unknown option '{item}' (known: {', '.join(OPTIONS)})")
        if key in values:
            raise _bad(arch, f"option '{key}' is given twice")
        if key == "img_size":
            values[key] = _size(arch, value)
        elif key == "global_pool":
            values[key] = value
        else:
            values[key] = _positive(arch, key, value)
    return TimmArch(model, **values)
