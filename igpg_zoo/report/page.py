"""The report as one HTML file: summary tables and the charts embedded as base64 SVG images.

Every value from the registry is escaped; the file references nothing outside itself.
"""

from __future__ import annotations

import base64
import html
from datetime import datetime, timezone

import igpg_zoo.report.plots as plots
import igpg_zoo.report.views as views
from igpg_zoo.report.catalog import facets
from igpg_zoo.zoo import Zoo

CHARTS = (("map", "Zoo map"), ("accuracy", "Generated vs trained accuracy"), ("novelty", "Novelty"),
          ("finetune", "Fine-tuning curves"))
STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1200px;color:#222;padding:0 1rem}
h1{margin-bottom:.2rem} .sub{color:#666;margin-top:0} table{border-collapse:collapse;margin:.5rem 0 1.5rem}
td,th{border:1px solid #ddd;padding:.25rem .6rem;text-align:left;font-size:.9rem} th{background:#f4f4f4}
img{max-width:100%;border:1px solid #eee;margin:.5rem 0 1.5rem} section{margin-bottom:1rem}
"""


def _table(header: list[str], rows: list[list[object]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _image(svg: bytes, alt: str) -> str:
    data = base64.b64encode(svg).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/svg+xml;base64,{data}">'


def _summary(zoo: Zoo) -> str:
    info = facets(zoo)
    kinds = [[row["value"], row["count"]] for row in info["facets"]["kind"]]
    tasks = [[row["value"], row["count"]] for row in info["facets"]["task"][:15]]
    archs = [[row["value"], row["count"]] for row in info["facets"]["arch"][:15]]
    return (f"<p>{info['records']:,} record(s).</p>" + _table(["kind", "records"], kinds)
            + "<h3>Most common tasks</h3>" + _table(["task", "records"], tasks)
            + "<h3>Most common architectures</h3>" + _table(["architecture", "records"], archs))


def _novelty_table(zoo: Zoo) -> str:
    rows = views.novelty(zoo)
    if not rows:
        return ""
    shown = [[f"#{r['id']}", r["task"], r["arch"], "-" if r["acc"] is None else f"{r['acc']:.3f}",
              f"#{r['nearest_id']}" if r["nearest_id"] is not None else "-", f"{100 * r['relative_distance']:.1f} %",
              "yes" if r["exact_copy"] else "no"] for r in rows[:100]]
    return "<h3>Generated records</h3>" + _table(
        ["id", "task", "architecture", "acc", "nearest member", "distance (% of its norm)", "exact copy"], shown)


def render(zoo: Zoo, map_points: int) -> str:
    """The whole report of ``zoo``."""
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    where = html.escape(zoo.config.blob_owner)
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>igpg-zoo report</title>"
             f"<style>{STYLE}</style></head><body>",
             f"<h1>igpg-zoo report</h1><p class='sub'>Registry {where}, {when}</p>",
             "<section><h2>Summary</h2>" + _summary(zoo) + "</section>"]
    for name, title in CHARTS:
        svg = plots.draw(zoo, name, map_points)
        extra = _novelty_table(zoo) if name == "novelty" else ""
        parts.append(f"<section id='{name}'><h2>{html.escape(title)}</h2>{_image(svg, title)}{extra}</section>")
    parts.append("</body></html>")
    return "\n".join(parts)
