"""Strict validation of weights against an architecture: same keys, same shapes, or one line why."""

from __future__ import annotations

from typing import TYPE_CHECKING

from igpg_zoo.errors import CheckpointMismatch, ExportNotSupported

if TYPE_CHECKING:
    import torch

    from igpg_zoo.adapters.base import Adapter

_SHOWN = 3  # how many offending keys the message names


def _first(keys: list[str]) -> str:
    more = f" (+{len(keys) - _SHOWN} more)" if len(keys) > _SHOWN else ""
    return ", ".join(keys[:_SHOWN]) + more


def validate_weights(adapter: Adapter, arch: str, weights: dict[str, torch.Tensor]) -> None:
    """Raise CheckpointMismatch (one line) unless ``weights`` load strictly into ``adapter.build(arch)``.

    Buffers count as keys (BatchNorm running statistics included). The message names the first
    missing, unexpected and wrong-shaped keys.
    """
    expected = adapter.build(arch).state_dict()
    missing = [k for k in expected if k not in weights]
    unexpected = sorted(k for k in weights if k not in expected)
    wrong_shape = [f"{k} {tuple(weights[k].shape)} != {tuple(v.shape)}" for k, v in expected.items()
                   if k in weights and tuple(weights[k].shape) != tuple(v.shape)]
    if not (missing or unexpected or wrong_shape):
        _check_values(arch, expected, weights)
        return
    parts = []
    if missing:
        parts.append(f"missing {len(missing)} key(s): {_first(missing)}")
    if unexpected:
        parts.append(f"unexpected {len(unexpected)} key(s): {_first(unexpected)}")
    if wrong_shape:
        parts.append(f"wrong shape: {_first(wrong_shape)}")
    keys = list(expected)
    sample = f" (expected keys like {', '.join(keys[:2])})" if keys else ""
    raise CheckpointMismatch(
        f"weights do not fit architecture '{arch}': {'; '.join(parts)}{sample}; "
        "check --arch against the file (docs/adapters.md lists each family's key names)"
    )


def _check_values(arch: str, expected: dict[str, torch.Tensor], weights: dict[str, torch.Tensor]) -> None:
    """Floating-point tensors where the module has them, and every value finite."""
    not_float = [f"{k} ({weights[k].dtype})" for k, v in expected.items()
                 if v.is_floating_point() and not weights[k].is_floating_point()]
    if not_float:
        raise CheckpointMismatch(f"weights for '{arch}' must be floating point: {_first(not_float)}; "
                                 "save the model's own state_dict")
    bad = [k for k, v in weights.items() if v.is_floating_point() and not bool(v.isfinite().all())]
    if bad:
        raise CheckpointMismatch(f"weights for '{arch}' hold NaN or infinite values in {_first(bad)}; "
                                 "add a checkpoint from before training diverged")


def declared_input(adapter: Adapter, arch: str) -> tuple[int, ...] | None:
    """The sample shape ``arch`` declares (from its adapter's example input), or None if it gives none."""
    try:
        return tuple(int(s) for s in adapter.example_input(arch).shape[1:])
    except ExportNotSupported:
        return None


def declared_outputs(adapter: Adapter, arch: str) -> int:
    """How many classes ``arch`` outputs (its module's last dimension on the example input)."""
    import torch

    with torch.no_grad():
        return int(adapter.build(arch).eval()(adapter.example_input(arch)).shape[-1])


def _dims(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape))


def data_mismatch(adapter: Adapter, arch: str, sample_shape: tuple[int, ...], n_labels: int) -> str | None:
    """Why data of ``sample_shape`` with labels ``0..n_labels-1`` cannot train or score ``arch`` (None: it can).

    The data must match what the architecture string declares: the sample shape exactly (a CNN
    with global pooling runs at any size, but its string names one) and no more labels than outputs.
    Callers raise their own error class with the returned one-line reason.
    """
    declared = declared_input(adapter, arch)
    if declared is None:
        return None  # an adapter without an example input declares neither
    if tuple(sample_shape) != declared:
        return (f"the data's inputs (shape {_dims(sample_shape)}) do not fit '{arch}', which declares input "
                f"{_dims(declared)}; resize the data or pick an architecture declaring i{_dims(sample_shape)}")
    outputs = declared_outputs(adapter, arch)
    if n_labels > outputs:
        return (f"the data has {n_labels} labels for the {outputs} outputs of '{arch}' (labels up to "
                f"{n_labels - 1}); pick an architecture with {n_labels} outputs or relabel the data")
    return None
