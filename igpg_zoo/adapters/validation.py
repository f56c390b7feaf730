"""Strict validation of weights against an architecture: same keys, same shapes, or one line why."""

from __future__ import annotations

from typing import TYPE_CHECKING

from igpg_zoo.errors import CheckpointMismatch

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
