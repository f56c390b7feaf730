"""The nn.Module of the small-network family (imports torch; loaded only when a model is built).

Layer names are part of the family's contract (docs/adapters.md): ``conv{i}`` / ``bn{i}``,
``fc{j}``, ``head``. Activations and pooling are functional, so they own no state-dict keys.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from igpg_zoo.adapters.smallnet_grammar import SmallNetSpec

_ACT = {"relu": F.relu, "gelu": F.gelu, "tanh": torch.tanh, "silu": F.silu}


class SmallNet(nn.Module):
    """mlp: flatten -> [fc_j, act]* -> head.
    cnn: [conv_i (bn_i) act (maxpool 2 if spatial >= 4)]* -> global avg pool -> [fc_j, act]* -> head.
    """

    def __init__(self, spec: SmallNetSpec):
        super().__init__()
        self.spec = spec
        self.act = _ACT[spec.activation]
        conv_cls = {1: nn.Conv1d, 2: nn.Conv2d}.get(spec.conv_dims)
        bn_cls = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d}.get(spec.conv_dims)
        self.pools = [pool for _, pool in spec.spatial_sizes()]
        c_in = spec.input_shape[0]
        for i, (c, k) in enumerate(spec.convs, start=1):
            self.add_module(f"conv{i}", conv_cls(c_in, c, k, padding=k // 2))
            if spec.batchnorm:
                self.add_module(f"bn{i}", bn_cls(c))
            c_in = c
        f_in = spec.in_features
        for j, w in enumerate(spec.hidden, start=1):
            self.add_module(f"fc{j}", nn.Linear(f_in, w))
            f_in = w
        self.head = nn.Linear(f_in, spec.n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, *input_shape) -> (B, n_classes)
        spec = self.spec
        if spec.family == "cnn":
            pool = F.max_pool2d if spec.conv_dims == 2 else F.max_pool1d
            for i, do_pool in enumerate(self.pools, start=1):
                x = getattr(self, f"conv{i}")(x)  # (B, C_i, *spatial)
                if spec.batchnorm:
                    x = getattr(self, f"bn{i}")(x)
                x = self.act(x)
                if do_pool:
                    x = pool(x, 2)
            x = x.mean(dim=tuple(range(2, x.dim())))  # (B, C_last) global average pooling
        else:
            x = x.flatten(1)  # (B, prod(input_shape))
        for j in range(1, len(spec.hidden) + 1):
            x = self.act(getattr(self, f"fc{j}")(x))  # (B, W_j)
        return self.head(x)  # (B, n_classes)
