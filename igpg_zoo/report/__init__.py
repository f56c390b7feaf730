"""``igpg-zoo report``: the zoo's map and charts in one self-contained HTML file.

``views`` reads what each chart shows from the registry, ``plots`` draws it with matplotlib (SVG),
``page`` puts the charts (embedded as base64) and a few tables into one file. The web page of
``igpg-zoo serve`` shows the same charts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from igpg_zoo.zoo import Zoo


def render_report(zoo: Zoo, map_points: int = 20_000) -> str:
    """The report of ``zoo`` as one HTML document (plots embedded, no outside references)."""
    from igpg_zoo.report.page import render

    return render(zoo, map_points)
