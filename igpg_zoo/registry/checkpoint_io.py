"""Safe checkpoint reading and the canonical byte form of weights.

Reading accepts ``.safetensors`` and, through ``torch.load(weights_only=True)`` only, ``.pt``,
``.pth`` and ``.bin``. A pickle that needs code to load is refused (``UnsafeCheckpoint``) and never
executed. The canonical form is a safetensors file of the sorted tensors with no metadata, so the
same tensors always give the same bytes and the same sha256, whether they arrive as torch tensors or
as numpy arrays: ``read_arrays`` reads a ``.safetensors`` file as numpy arrays (no torch import)
when numpy holds every dtype of the file.
"""

from __future__ import annotations

import hashlib
import pickle
import re
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from igpg_zoo.errors import CheckpointError, UnsafeCheckpoint

if TYPE_CHECKING:
    import numpy as np
    import torch

PICKLE_SUFFIXES = (".pt", ".pth", ".bin")
ACCEPTED_SUFFIXES = (".safetensors", *PICKLE_SUFFIXES)
WRAPPER_KEYS = ("state_dict", "model")  # {"state_dict": sd, "epoch": 3, ...} -> sd
PREFIXES = ("module.", "_orig_mod.")  # DataParallel / DistributedDataParallel, torch.compile


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Read a checkpoint file into a canonical flat state dict on the CPU.

    Raises:
        CheckpointError: missing, truncated or malformed file, or an extension not accepted.
        UnsafeCheckpoint: a pickle that needs code (classes, functions) to load.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in ACCEPTED_SUFFIXES:
        raise CheckpointError(
            f"cannot read {path.name}: extension '{suffix or '(none)'}' is not accepted; "
            f"save the weights as {', '.join(ACCEPTED_SUFFIXES)}"
        )
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist or is not a file")
    raw = _read_safetensors(path) if suffix == ".safetensors" else _read_pickle(path)
    return strip_prefixes(_unwrap(raw, path))


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except Exception as err:  # SafetensorError, OSError, ...: the file is not a complete safetensors file
        raise CheckpointError(
            f"cannot read {path.name}: not a valid safetensors file ({_first_line(err)}); "
            "it may be truncated, re-export it"
        ) from None


def read_arrays(path: Path) -> dict[str, np.ndarray] | None:
    """A safetensors file as numpy arrays, or None (bfloat16, damage, ...: the torch reader decides)."""
    from safetensors.numpy import load_file

    try:
        arrays = load_file(str(path))
    except Exception:  # the torch path gives the one-line message
        return None
    return strip_prefixes(arrays) if arrays else None


def _read_pickle(path: Path) -> object:
    import torch

    try:
        with warnings.catch_warnings():  # torch's notes on odd pickles: the refusal below is the one line
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"GLOBAL ([\w.]+)", str(err))
        if found:  # the pickle names a class or function: loading it would run code
            what = f" (it references {found.group(1)})"
            raise UnsafeCheckpoint(
                f"refused {path.name}: the pickle needs code to load{what} and was not executed; "
                "save a plain state dict (torch.save(model.state_dict(), ...)) or use .safetensors"
            ) from None
        detail = re.search(r"Unsupported operand \d+", str(err))
        raise CheckpointError(
            f"cannot read {path.name}: not a checkpoint the safe loader accepts "
            f"({detail.group(0) if detail else _first_line(err)}); save a plain state dict or use .safetensors"
        ) from None
    except Exception as err:  # truncated zip, garbage bytes, EOF
        raise CheckpointError(
            f"cannot read {path.name}: the file is truncated or not a PyTorch checkpoint "
            f"({type(err).__name__}: {_first_line(err)}); re-save it"
        ) from None


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return (text[0] if text else type(err).__name__)[:160]


def _unwrap(obj: object, path: Path) -> dict[str, torch.Tensor]:
    import torch

    while isinstance(obj, dict):
        wrapper = next((k for k in WRAPPER_KEYS if isinstance(obj.get(k), dict)), None)
        if wrapper is None:
            break
        obj = obj[wrapper]
    if not isinstance(obj, dict) or not obj:
        raise CheckpointError(
            f"{path.name} holds no state dict (found {type(obj).__name__}); save model.state_dict() "
            "or a dict with a 'state_dict' or 'model' key"
        )
    bad = [str(k) for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(
            f"{path.name} is not a flat state dict: entries {', '.join(bad[:3])} are not named tensors; "
            "save model.state_dict()"
        )
    return obj


def strip_prefixes(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop leading ``module.`` / ``_orig_mod.`` from every key (repeatedly, in any order)."""
    out: dict[str, torch.Tensor] = {}
    for key, value in weights.items():
        changed = True
        while changed:
            changed = False
            for prefix in PREFIXES:
                if key.startswith(prefix):
                    key, changed = key[len(prefix):], True
        if key in out:
            raise CheckpointError(f"two tensors are named '{key}' once prefixes are stripped; save one state dict")
        out[key] = value
    return out


def canonical_bytes(weights: dict[str, torch.Tensor] | dict[str, np.ndarray]) -> bytes:
    """Safetensors bytes of the tensors sorted by name, on the CPU, contiguous, unshared; numpy arrays
    give the same bytes as the equal torch tensors."""
    if _all_numpy(weights):
        import numpy as np
        from safetensors.numpy import save as save_arrays

        return save_arrays({name: np.ascontiguousarray(weights[name]) for name in sorted(weights)})
    from safetensors.torch import save

    tensors = {name: _as_tensor(weights[name]).detach().to("cpu").contiguous().clone() for name in sorted(weights)}
    return save(tensors)


def _all_numpy(weights: dict) -> bool:
    import numpy as np

    return all(isinstance(v, np.ndarray) for v in weights.values())


def _as_tensor(value):
    import torch

    return value if isinstance(value, torch.Tensor) else torch.from_numpy(value)


def as_tensors(weights: dict) -> dict[str, torch.Tensor]:
    """The weights as torch tensors (numpy arrays converted, sharing memory)."""
    return {name: _as_tensor(value) for name, value in weights.items()}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def n_params(weights: dict[str, torch.Tensor] | dict[str, np.ndarray]) -> int:
    """Number of floating-point numbers (parameters and float buffers); integer buffers do not count."""
    if _all_numpy(weights):
        import numpy as np

        return sum(int(v.size) for v in weights.values()
                   if np.issubdtype(v.dtype, np.floating) or np.issubdtype(v.dtype, np.complexfloating))
    return sum(t.numel() for t in weights.values() if t.is_floating_point() or t.is_complex())
