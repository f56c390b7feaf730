"""Procedural colour images, made offline with numpy: the ``shapes`` base dataset and colourising.

``make_shapes`` draws one filled shape per 32x32 image (six classes) at a random position and
size, in a random light colour on a random darker background colour. ``colourise`` turns
one-channel images into three-channel ones: strokes in one colour, the background in a darker one,
either per image or one pair per set with a little per-image jitter (the ``[colour=SEED]``
option). Both are deterministic given their seed.
"""

from __future__ import annotations

import numpy as np

SHAPE_CLASSES = ("circle", "square", "triangle", "plus", "ring", "diamond")
SHAPES_SIZE = 32
SHAPES_PER_CLASS = (1000, 200)  # train, test images per class
SHAPES_SEED = 0  # the built-in set never changes
COLOUR_JITTER = 0.08  # [colour=SEED]: per-image spread around the set's colour pair
MIN_CONTRAST = 0.35  # |brightness(stroke) - brightness(background)| at least this


def contrasting_colours(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(fg, bg) colours (n, 3) in [0, 1]: the stroke's mean brightness exceeds the background's by at
    least MIN_CONTRAST (light strokes on a darker background; the hues are free)."""
    fg = rng.uniform(0.35, 1.0, (n, 3))
    bg = rng.uniform(0.0, 0.65, (n, 3))
    for _ in range(64):  # redraw the pairs that are too close; converges in a few rounds
        close = fg.mean(1) - bg.mean(1) < MIN_CONTRAST
        if not close.any():
            break
        fg[close] = rng.uniform(0.35, 1.0, (int(close.sum()), 3))
        bg[close] = rng.uniform(0.0, 0.65, (int(close.sum()), 3))
    close = fg.mean(1) - bg.mean(1) < MIN_CONTRAST
    fg[close], bg[close] = 1.0, 0.0  # the rare leftovers: white on black
    return fg, bg


def colourise(x: np.ndarray, rng: np.random.Generator, palette: tuple[np.ndarray, np.ndarray] | None = None,
              jitter: float = 0.0) -> np.ndarray:
    """(N, 1, H, W) intensities in [0, 1] -> (N, 3, H, W): per image ``bg + (fg - bg) * x``.

    Without ``palette`` every image gets its own random colour pair; with one, ``(fg, bg)`` of shape
    (3,), every image gets that pair moved by Gaussian noise of size ``jitter`` (clipped to [0, 1]).
    """
    if palette is None:
        fg, bg = contrasting_colours(rng, len(x))
    else:
        fg = np.clip(palette[0] + jitter * rng.standard_normal((len(x), 3)), 0.0, 1.0)
        bg = np.clip(palette[1] + jitter * rng.standard_normal((len(x), 3)), 0.0, 1.0)
    fg, bg = (c.astype(np.float32)[:, :, None, None] for c in (fg, bg))
    out = np.empty((len(x), 3, *x.shape[2:]), dtype=np.float32)  # (N, 3, H, W)
    np.multiply(fg - bg, x.astype(np.float32, copy=False), out=out)
    out += bg
    return out


def set_palette(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The (fg, bg) colours, each (3,), that ``[colour=SEED]`` gives a whole dataset."""
    fg, bg = contrasting_colours(np.random.default_rng([seed, 0xC010]), 1)
    return fg[0], bg[0]


def _mask(c: int, dx: np.ndarray, dy: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Boolean (n, S, S) masks of shape class ``c``; dx, dy pixel offsets from each centre, r radii (n,)."""
    r = r[:, None, None]
    ax, ay = np.abs(dx), np.abs(dy)
    if c == 0:  # circle
        return np.hypot(dx, dy) <= r
    if c == 1:  # square
        return np.maximum(ax, ay) <= 0.8 * r
    if c == 2:  # triangle, apex up
        return (dy <= 0.7 * r) & (ax <= 0.6 * (dy + r))
    if c == 3:  # plus
        return ((ax <= 0.3 * r) & (ay <= r)) | ((ay <= 0.3 * r) & (ax <= r))
    if c == 4:  # ring
        dist = np.hypot(dx, dy)
        return (dist <= r) & (dist >= 0.55 * r)
    return ax + ay <= r  # diamond


def make_shapes(n_per_class: int, seed: int, size: int = SHAPES_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)``: ``n_per_class`` images of every shape, (N, 3, size, size) float32 in [0, 1], shuffled."""
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.repeat(np.arange(len(SHAPE_CLASSES)), n_per_class))
    n = len(y)
    r = rng.uniform(0.18, 0.34, n) * size  # radius in pixels
    cx = rng.uniform(r, size - 1 - r)  # the whole shape stays inside the image
    cy = rng.uniform(r, size - 1 - r)
    grid = np.arange(size, dtype=np.float32)
    mask = np.zeros((n, 1, size, size), dtype=np.float32)  # (N, 1, S, S)
    for c in range(len(SHAPE_CLASSES)):
        idx = np.flatnonzero(y == c)
        dx = grid[None, None, :] - cx[idx, None, None].astype(np.float32)  # (n, 1, S)
        dy = grid[None, :, None] - cy[idx, None, None].astype(np.float32)  # (n, S, 1)
        mask[idx, 0] = _mask(c, dx, dy, r[idx].astype(np.float32))
    x = colourise(mask, rng)
    x += 0.03 * rng.standard_normal(x.shape, dtype=np.float32)  # a little sensor noise
    np.clip(x, 0.0, 1.0, out=x)
    return x, y.astype(np.int64)
