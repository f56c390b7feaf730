"""The inputs of every export parity check, and the PyTorch-vs-PyTorch comparison.

Parity is measured on random batches (fixed seed) shaped like the adapter's example input, at
batch sizes 1 and 3: 1 catches graphs that broadcast wrongly, 3 differs from the traced batch (2),
so a batch axis that was frozen at export fails loudly.
"""

from __future__ import annotations

import torch
from torch import nn

from igpg_zoo.errors import ExportNotSupported, ExportParityError

PARITY_BATCHES = (1, 3)
PARITY_SEED = 0


def random_batch(example: torch.Tensor, batch: int, gen: torch.Generator) -> torch.Tensor:
    """A batch like ``example`` (same per-sample shape and dtype): N(0, 1), or ints in its range."""
    shape = (batch, *example.shape[1:])
    if example.dtype.is_floating_point:
        return torch.randn(shape, generator=gen).to(example.dtype)
    high = max(int(example.max()) + 1, 2)  # integer inputs (token ids): stay in the example's range
    return torch.randint(0, high, shape, generator=gen, dtype=example.dtype)


def first_output(output) -> torch.Tensor:
    """The first tensor of a module output (tensor, tuple or list)."""
    while isinstance(output, (tuple, list)):
        output = output[0]
    return output


def batches(example: torch.Tensor, sizes: tuple[int, ...] = PARITY_BATCHES, seed: int = PARITY_SEED):
    """The parity inputs, one per batch size, always the same for the same example shape."""
    gen = torch.Generator().manual_seed(seed)
    return [random_batch(example, size, gen) for size in sizes]


def max_abs_diff(got, expected, where: str) -> float:
    """max|got - expected| in float64; a shape mismatch is a parity failure, not a broadcast."""
    got, expected = torch.as_tensor(got).double(), torch.as_tensor(expected).double()
    if got.shape != expected.shape:
        raise ExportParityError(f"{where}: output shape {tuple(got.shape)} differs from PyTorch's "
                                f"{tuple(expected.shape)}; the export does not match the module")
    return float((got - expected).abs().max()) if got.numel() else 0.0


def torch_parity(module: nn.Module, other: nn.Module, example: torch.Tensor) -> float:
    """max|other(x) - module(x)| over the parity batches (both modules in eval mode).

    A module that cannot run on inputs shaped like ``example`` is ExportNotSupported, one line.
    """
    worst = 0.0
    for x in batches(example):
        try:
            with torch.no_grad():
                expected, got = first_output(module(x)), first_output(other(x))
        except (RuntimeError, AssertionError, ValueError, TypeError) as exc:
            why = (str(exc).strip().splitlines() or [""])[0][:200]
            raise ExportNotSupported(
                f"the module does not run on its example input of shape {tuple(x.shape)} "
                f"({type(exc).__name__}: {why}); check the architecture string's input size"
            ) from None
        worst = max(worst, max_abs_diff(got, expected, f"batch {x.shape[0]}"))
    return worst
