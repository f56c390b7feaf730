"""One-token decoding steps of the prior, with its parameters bound once per sampling call.

Sampling feeds the prior one token per step. ``Prior.step`` does that through the blocks' general
forward, built for (B, T, C) windows: every step pays for nn.Module attribute lookups, for the T
axis, and, for a single sequence, for matrix-matrix products where matrix-vector ones do. A
decoding step of this small model is bound by exactly that per-call overhead, not by arithmetic.

``TokenStep`` runs the same arithmetic for one new token per row (x is (B, C), or (C,) for one
sequence) on parameters looked up once. Each layer uses the kernels ``Prior.step`` reaches
(``F.linear`` on a single row is ``addmv``), so the logits are the same bit for bit
(tests/test_prior_model.py); BENCHMARKS.md has the speed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from igpg_zoo.igpg.prior import KVCache, Prior


def _affine(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
    """x W^T + b for x (B, in) or a single row (in,)."""
    if x.dim() == 1:
        return torch.addmv(b, w, x) if b is not None else torch.mv(w, x)
    return F.linear(x, w, b)


class TokenStep:
    """``step(tok, cache, start)``: feed tokens (B,) at window position ``start`` -> next logits (B, V).

    For a prior in eval mode; the cache must already hold the prefix (``Prior.step`` with the
    condition feeds it, and any context tokens).
    """

    def __init__(self, prior: Prior):
        if prior.training:
            raise ValueError("TokenStep decodes with a prior in eval mode (call prior.eval())")
        cfg = prior.cfg
        self.n_prefix, self.n_head, self.width = cfg.n_prefix, cfg.n_head, cfg.n_embd
        self.wte, self.wpe = prior.wte.weight, prior.wpe.weight
        self.eps = prior.ln_f.eps
        self.final = (prior.ln_f.weight, prior.ln_f.bias, prior.lm_head.weight)
        self.layers = [(b.ln_1.weight, b.ln_1.bias, b.attn.c_attn.weight, b.attn.c_attn.bias,
                        b.attn.c_proj.weight, b.attn.c_proj.bias, b.ln_2.weight, b.ln_2.bias,
                        b.mlp.c_fc.weight, b.mlp.c_fc.bias, b.mlp.c_proj.weight, b.mlp.c_proj.bias)
                       for b in prior.h]

    def __call__(self, tok: torch.Tensor, cache: KVCache, start: int) -> torch.Tensor:
        B, C, nh = tok.size(0), self.width, self.n_head
        t = cache.length  # the cache slot this token fills
        if t + 1 > cache.capacity:
            raise ValueError(f"KV cache holds {cache.capacity} positions; {t + 1} requested")
        x = self.wte[tok] + self.wpe[self.n_prefix + start]  # (B, C)
        if B == 1:
            x = x.view(C)  # one sequence: matrix-vector products
        shape = (C,)
        for layer, (g1, b1, w_qkv, b_qkv, w_o, b_o, g2, b2, w_fc, b_fc, w_out, b_out) in enumerate(self.layers):
            qkv = _affine(F.layer_norm(x, shape, g1, b1, self.eps), w_qkv, b_qkv)  # (B, 3C) or (3C,)
            q, k, v = qkv.view(B, 3, nh, 1, C // nh).unbind(1)  # 3 x (B, nh, 1, hs)
            keys, values = cache.k[layer], cache.v[layer]  # (B, nh, T_max, hs)
            keys.narrow(2, t, 1).copy_(k)
            values.narrow(2, t, 1).copy_(v)
            y = F.scaled_dot_product_attention(q, keys.narrow(2, 0, t + 1), values.narrow(2, 0, t + 1))  # (B, nh, 1, hs)
            x = x + _affine(y.view(x.shape), w_o, b_o)
            h = F.gelu(_affine(F.layer_norm(x, shape, g2, b2, self.eps), w_fc, b_fc))  # (B, 4C) or (4C,)
            x = x + _affine(h, w_out, b_out)
        cache.length = t + 1
        g, b, head = self.final
        return _affine(F.layer_norm(x, shape, g, b, self.eps), head, None).view(B, -1)  # (B, V)
