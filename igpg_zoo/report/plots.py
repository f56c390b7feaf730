"""The report's charts, drawn with matplotlib (no pyplot state: safe in a server's threads) as SVG.

``draw(zoo, name)`` returns the SVG bytes of one chart: ``map``, ``accuracy``, ``novelty`` or
``finetune``. A chart with nothing to show says so in its own frame.
"""

from __future__ import annotations

import io
from collections import Counter

import numpy as np

import igpg_zoo.report.views as views
from igpg_zoo.zoo import Zoo

NAMES = ("map", "accuracy", "novelty", "finetune")
TOP_GROUPS = 10  # groups coloured on the map; the rest are grey
OTHER = "other"
RASTER_ABOVE = 2000  # map points drawn as vectors up to this many


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _svg(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="svg", metadata={"Date": None})  # no date: the same zoo draws the same file
    return buf.getvalue()


def _empty(title: str, why: str) -> bytes:
    fig = _figure(6, 2.2)
    ax = fig.add_subplot()
    ax.set_axis_off()
    ax.set_title(title)
    ax.text(0.5, 0.5, why, ha="center", va="center", wrap=True, color="#555")
    return _svg(fig)


def _scatter_by(ax, xy: np.ndarray, labels: list[str], generated: np.ndarray, title: str) -> None:
    from matplotlib import colormaps

    top = [g for g, _ in Counter(labels).most_common(TOP_GROUPS)]
    colours = colormaps["tab10"]
    groups = [(g, colours(i)) for i, g in enumerate(top)] + [(OTHER, (0.7, 0.7, 0.7, 1.0))]
    names = np.array([lbl if lbl in top else OTHER for lbl in labels])
    size = float(np.clip(4000 / max(len(labels), 1), 6, 60))  # small zoos get larger points
    raster = len(labels) > RASTER_ABOVE  # many points: drawn as one embedded image, not one SVG element each
    for group, colour in groups:
        mine = names == group
        if mine.any():
            ax.scatter(*xy[mine & ~generated].T, s=size, color=colour, alpha=0.6, linewidths=0,
                       label=_short(group, 40), rasterized=raster)
            ax.scatter(*xy[mine & generated].T, s=4 * size + 40, color=colour, marker="*", edgecolors="black",
                       linewidths=0.6)
    if generated.any():
        ax.scatter([], [], s=70, marker="*", color="white", edgecolors="black", label="generated (★)")
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)


def zoo_map(zoo: Zoo, max_points: int) -> bytes:
    data = views.zoo_map(zoo, max_points)
    if data is None:
        return _empty("Zoo map", "fewer than 3 records with a text vector: nothing to map yet")
    fig = _figure(13, 5)
    left, right = fig.subplots(1, 2)
    _scatter_by(left, data.xy, data.tasks, data.generated, "coloured by task")
    _scatter_by(right, data.xy, data.families, data.generated, "coloured by architecture family")
    shown = f"{len(data.xy):,} of {data.total:,}" if data.total > len(data.xy) else f"{data.total:,}"
    fig.suptitle(f"Zoo map: {shown} records, text embeddings projected by PCA "
                 f"({100 * sum(data.explained):.0f} % of the variance)")
    return _svg(fig)


def accuracy(zoo: Zoo) -> bytes:
    rows = views.accuracy_by_task(zoo)
    if not rows:
        return _empty("Generated vs trained accuracy", "no generated record with an acc metric yet "
                      "(igpg-zoo generate --register)")
    fig = _figure(max(6.0, 1.2 * len(rows) + 2), 4.2)
    ax = fig.add_subplot()
    pos = np.arange(len(rows))
    trained = [r[1] if r[1] else [np.nan] for r in rows]
    ax.boxplot(trained, positions=pos - 0.18, widths=0.3, patch_artist=True, manage_ticks=False,
               boxprops={"facecolor": "#9ecae1"}, medianprops={"color": "#08519c"})
    jitter = np.random.default_rng(0)
    for x, (_task, _trained, generated) in zip(pos, rows, strict=True):
        ax.scatter(x + 0.18 + jitter.uniform(-0.06, 0.06, len(generated)), generated, s=110, marker="*",
                   color="#e6550d", edgecolors="black", linewidths=0.4, zorder=3)
    ax.set_xticks(pos, [_short(r[0]) for r in rows], rotation=20, ha="right", fontsize=8)
    ax.set_xlim(-0.6, len(rows) - 0.4)
    ax.set_ylabel("acc")
    ax.legend(handles=[_patch("#9ecae1", "trained / fine-tuned / imported"), _patch("#e6550d", "generated (★)")],
              fontsize=8, loc="best")
    ax.set_title("Generated vs trained accuracy per task")
    return _svg(fig)


def _patch(colour: str, label: str):
    from matplotlib.patches import Patch

    return Patch(facecolor=colour, edgecolor="black", label=label)


def _short(text: str, width: int = 28) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def novelty(zoo: Zoo) -> bytes:
    rows = views.novelty(zoo)
    if not rows:
        return _empty("Novelty", "no generated record with a nearest-member distance yet")
    fig = _figure(7, 3.6)
    ax = fig.add_subplot()
    dist = np.array([r["relative_distance"] for r in rows])
    copies = sum(r["exact_copy"] for r in rows)
    ax.hist(dist * 100, bins=min(30, max(5, len(rows) // 2)), color="#74c476", edgecolor="black")
    ax.set_xlabel("distance to the nearest zoo member (% of its norm)")
    ax.set_ylabel("generated records")
    ax.set_title(f"Novelty of {len(rows)} generated record(s); {copies} exact cop{'y' if copies == 1 else 'ies'}")
    return _svg(fig)


def finetune(zoo: Zoo) -> bytes:
    curves = views.finetune_curves(zoo)
    if not curves:
        return _empty("Fine-tuning curves", "no fine-tuned record has recorded a curve yet")
    fig = _figure(7, 3.8)
    ax = fig.add_subplot()
    for c in curves:
        ax.plot(c.x, c.y, marker="o", markersize=3, label=f"#{c.record_id} {_short(c.name, 24)}")
    ax.set_xlabel("epoch / step")
    ax.set_ylabel(", ".join(sorted({c.label for c in curves})))
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    ax.set_title(f"Fine-tuning curves ({len(curves)} record(s))")
    return _svg(fig)


def draw(zoo: Zoo, name: str, max_points: int = 20_000) -> bytes:
    """The SVG of chart ``name`` (one of ``NAMES``)."""
    if name == "map":
        return zoo_map(zoo, max_points)
    return {"accuracy": accuracy, "novelty": novelty, "finetune": finetune}[name](zoo)
