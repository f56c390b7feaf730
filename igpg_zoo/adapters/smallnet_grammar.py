"""The architecture-string grammar of the built-in small-network family (no torch here).

```
mlp-i<SHAPE>-h<W>[-h<W>...]-o<CLASSES>[-<act>]
cnn-i<SHAPE>-c<CH>k<K>[-c<CH>k<K>...][-h<W>...]-o<CLASSES>[-<act>][-bn]
SHAPE: CxHxW (2-D conv), CxL (1-D conv) or N (flat; mlp only)
act:   relu (default) | gelu | tanh | silu
```

``parse(arch)`` gives a :class:`SmallNetSpec`; everything else (parameter count, spatial sizes,
text, numeric features) is computed from the spec, so nothing here needs torch. The full
reference, with examples and their parameter counts, is docs/adapters.md.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from igpg_zoo.errors import UnknownArchitecture

ACTIVATIONS = ("relu", "gelu", "tanh", "silu")
FAMILIES = ("mlp", "cnn")
#: structure() reports the first this-many conv / hidden layers one by one (zero-padded), so
#: every arch string of the family gives the same feature vector length; counts cover the rest.
STRUCTURE_SLOTS = 4
_DOC = "see docs/adapters.md for the smallnet grammar"
_INT = r"([1-9][0-9]*)"
_SHAPE = re.compile(rf"^i{_INT}(?:x{_INT})?(?:x{_INT})?$")
_CONV = re.compile(rf"^c{_INT}k{_INT}$")
_HIDDEN = re.compile(rf"^h{_INT}$")
_OUT = re.compile(rf"^o{_INT}$")
MAX_PARAMS = 100_000_000  # a "small" net: beyond this building it would exhaust memory before any check


@dataclass(frozen=True)
class SmallNetSpec:
    family: str  # "mlp" | "cnn"
    input_shape: tuple[int, ...]  # (N,), (C, L) or (C, H, W)
    convs: tuple[tuple[int, int], ...]  # (channels, kernel) per conv layer
    hidden: tuple[int, ...]  # widths of the hidden Linear layers
    n_classes: int
    activation: str = "relu"
    batchnorm: bool = False

    @property
    def conv_dims(self) -> int:
        """0 for an MLP, 1 for Conv1d, 2 for Conv2d."""
        return len(self.input_shape) - 1 if self.family == "cnn" else 0

    @property
    def in_features(self) -> int:
        """Inputs of the first Linear layer: flattened input (mlp) or last conv width (cnn)."""
        if self.family == "mlp":
            return math.prod(self.input_shape)
        return self.convs[-1][0]

    def spatial_sizes(self) -> list[tuple[tuple[int, ...], bool]]:
        """Per conv layer: (spatial size after the conv, whether a MaxPool(2) follows)."""
        size = self.input_shape[1:]
        out = []
        for _, k in self.convs:
            size = tuple(s + 2 * (k // 2) - k + 1 for s in size)  # padding k//2
            pool = min(size) >= 4
            out.append((size, pool))
            if pool:
                size = tuple(s // 2 for s in size)
        return out

    def n_params(self) -> int:
        """Number of trainable parameters (BatchNorm buffers are not parameters)."""
        n, c_in = 0, self.input_shape[0]
        for c, k in self.convs:
            n += c_in * c * k**self.conv_dims + c + (2 * c if self.batchnorm else 0)
            c_in = c
        f_in = self.in_features
        for w in (*self.hidden, self.n_classes):
            n += f_in * w + w
            f_in = w
        return n

    def to_arch(self) -> str:
        """The canonical arch string (the default activation is left out)."""
        parts = [self.family, "i" + "x".join(map(str, self.input_shape))]
        parts += [f"c{c}k{k}" for c, k in self.convs]
        parts += [f"h{w}" for w in self.hidden]
        parts.append(f"o{self.n_classes}")
        if self.activation != "relu":
            parts.append(self.activation)
        if self.batchnorm:
            parts.append("bn")
        return "-".join(parts)


def _bad(arch: str, token: str, why: str) -> UnknownArchitecture:
    return UnknownArchitecture(f"bad smallnet architecture '{arch}': token '{token}' {why}; {_DOC}")


def looks_like_smallnet(arch: str) -> bool:
    """Whether ``arch`` claims to be of this family (starts with ``mlp-`` or ``cnn-``)."""
    return arch.split("-", 1)[0] in FAMILIES and "-" in arch


def _parse_shape(arch: str, family: str, token: str) -> tuple[int, ...]:
    m = _SHAPE.match(token)
    if not m:
        raise _bad(arch, token, "is not an input shape (expected iN, iCxL or iCxHxW, e.g. i1x8x8)")
    shape = tuple(int(g) for g in m.groups() if g is not None)
    if family == "cnn" and len(shape) == 1:
        raise _bad(arch, token, "is a flat input; a cnn needs iCxL (1-D) or iCxHxW (2-D)")
    return shape


def _parse_tail(arch: str, tokens: list[str]) -> tuple[str, bool]:
    """The optional ``-<act>`` and ``-bn`` after the output token, in that order."""
    activation, batchnorm = "relu", False
    rest = list(tokens)
    if rest and rest[0] in ACTIVATIONS:
        activation = rest.pop(0)
    if rest and rest[0] == "bn":
        batchnorm = True
        rest.pop(0)
    if rest:
        tok = rest[0]
        why = (f"comes after the output token; only an activation ({'|'.join(ACTIVATIONS)}) then 'bn' may follow"
               if tok not in ACTIVATIONS else "repeats or follows 'bn'; write the activation before 'bn'")
        raise _bad(arch, tok, why)
    return activation, batchnorm


def parse(arch: str) -> SmallNetSpec:
    """Parse an arch string of the family; raises UnknownArchitecture naming the bad token."""
    tokens = arch.strip().split("-")
    family = tokens[0]
    if family not in FAMILIES:
        raise _bad(arch, family, "does not start a smallnet architecture (expected 'mlp-i...' or 'cnn-i...')")
    shape = _parse_shape(arch, family, tokens[1] if len(tokens) > 1 else "<end>")
    convs, hidden, i = [], [], 2
    while i < len(tokens) and _CONV.match(tokens[i]):
        if family == "mlp":
            raise _bad(arch, tokens[i], "is a conv layer; an mlp has only hidden layers (h<W>)")
        if hidden:
            raise _bad(arch, tokens[i], "is a conv layer after a hidden layer; convs come first")
        c, k = _CONV.match(tokens[i]).groups()
        convs.append((int(c), int(k)))
        i += 1
    while i < len(tokens) and _HIDDEN.match(tokens[i]):
        hidden.append(int(tokens[i][1:]))
        i += 1
    if i < len(tokens) and _CONV.match(tokens[i]):
        raise _bad(arch, tokens[i], "is a conv layer after a hidden layer; convs come first")
    if i >= len(tokens) or not _OUT.match(tokens[i]):
        tok = tokens[i] if i < len(tokens) else "<end>"
        expected = "c<CH>k<K>, h<W> or o<CLASSES>" if family == "cnn" else "h<W> or o<CLASSES>"
        raise _bad(arch, tok, f"is not a layer token (expected {expected}; numbers >= 1)")
    if family == "cnn" and not convs:
        raise _bad(arch, tokens[2], "starts a cnn without a conv layer; add at least one c<CH>k<K>")
    if family == "mlp" and not hidden:
        raise _bad(arch, tokens[i], "ends an mlp without a hidden layer; add at least one h<W>")
    activation, batchnorm = _parse_tail(arch, tokens[i + 1:])
    if batchnorm and family == "mlp":
        raise _bad(arch, "bn", "applies to conv layers only; an mlp has no batch norm")
    spec = SmallNetSpec(family, shape, tuple(convs), tuple(hidden), int(tokens[i][1:]), activation, batchnorm)
    if spec.n_params() > MAX_PARAMS:
        raise UnknownArchitecture(f"architecture '{arch}' has {spec.n_params():,} parameters; the smallnet family "
                                  f"stops at {MAX_PARAMS:,} (use a timm/ architecture for large models)")
    return spec


def describe(spec: SmallNetSpec) -> str:
    """Readable text: family, layers, widths, kernels, activation, input shape, classes, size."""
    shape = "x".join(map(str, spec.input_shape))
    if spec.family == "mlp":
        head = f"smallnet MLP (multi-layer perceptron) for flat input of shape {shape}"
        layers = [f"hidden linear {w}" for w in spec.hidden]
    else:
        kind = "2-D image" if spec.conv_dims == 2 else "1-D sequence"
        head = f"smallnet CNN (convolutional network, {spec.conv_dims}-D convolutions) for {kind} input {shape}"
        layers = []
        for (c, k), (_, pool) in zip(spec.convs, spec.spatial_sizes()):
            bn = " + batch norm" if spec.batchnorm else ""
            layers.append(f"conv {c} channels kernel {k}{bn}" + (" + max-pool 2" if pool else ""))
        layers.append("global average pooling")
        layers += [f"hidden linear {w}" for w in spec.hidden]
    layers.append(f"output linear {spec.n_classes} classes")
    depth = len(spec.convs) + len(spec.hidden) + 1
    return (f"{head}; {depth} weight layers: {', '.join(layers)}; activation {spec.activation}; "
            f"{spec.n_classes} classes; {spec.n_params():,} parameters")


def structure(spec: SmallNetSpec) -> dict[str, float]:
    """Numeric features with the same keys, in the same order, for every arch of the family."""
    c, h, w = (1, 1, *spec.input_shape) if len(spec.input_shape) == 1 else (
        (spec.input_shape[0], 1, spec.input_shape[1]) if len(spec.input_shape) == 2 else spec.input_shape)
    feats: dict[str, float] = {
        "is_cnn": float(spec.family == "cnn"), "conv_dims": float(spec.conv_dims),
        "input_channels": float(c), "input_height": float(h), "input_width": float(w),
        "input_numel": float(math.prod(spec.input_shape)), "n_classes": float(spec.n_classes),
        "n_conv": float(len(spec.convs)), "n_hidden": float(len(spec.hidden)),
        "depth": float(len(spec.convs) + len(spec.hidden) + 1),
        "batchnorm": float(spec.batchnorm),
    }
    feats.update({f"act_{a}": float(spec.activation == a) for a in ACTIVATIONS})
    for j in range(STRUCTURE_SLOTS):
        ch, k = spec.convs[j] if j < len(spec.convs) else (0, 0)
        feats[f"conv{j + 1}_channels"], feats[f"conv{j + 1}_kernel"] = float(ch), float(k)
    for j in range(STRUCTURE_SLOTS):
        feats[f"hidden{j + 1}_width"] = float(spec.hidden[j]) if j < len(spec.hidden) else 0.0
    widths = [c for c, _ in spec.convs] + list(spec.hidden)
    feats["max_width"] = float(max(widths))
    feats["n_params"] = float(spec.n_params())
    feats["log10_params"] = math.log10(spec.n_params())
    return feats
