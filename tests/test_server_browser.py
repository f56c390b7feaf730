"""One end-to-end test in a real browser: ``igpg-zoo serve`` on a free loopback port, Debian's headless
``chromium`` driven by Playwright (its own browser builds are never downloaded), searching, opening a
model card and saving a screenshot that must show the results; then the OpenAPI page.

Set ``IGPG_ZOO_SCREENSHOT_DIR`` to keep the screenshot; ``IGPG_ZOO_CHROMIUM`` names another binary.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
import torch

from igpg_zoo.adapters import get_adapter
from igpg_zoo.records import CheckpointMeta, Metric
from igpg_zoo.zoo import open_zoo

CHROMIUM = os.environ.get("IGPG_ZOO_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
MODELS = [  # (arch, task, dataset, acc, kind)
    ("mlp-i64-h16-o10", "handwritten digit recognition", "digits", 0.91, "trained"),
    ("cnn-i1x8x8-c4k3-h16-o10", "handwritten digit recognition", "digits", 0.95, "trained"),
    ("mlp-i64-h32-o10", "handwritten digit recognition", "digits", 0.89, "generated"),
    ("mlp-i13-h16-o3", "wine cultivar classification", "wine", 0.84, "trained"),
    ("mlp-i4-h8-o3", "iris flower species classification", "iris", 0.97, "trained"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tiny_registry(path) -> None:
    with open_zoo(str(path)) as zoo:
        for seed, (arch, task, dataset, acc, kind) in enumerate(MODELS):
            torch.manual_seed(seed)
            extra = {"nearest": {"id": 1, "distance": 1.5, "relative_distance": 0.2, "exact_copy_of": None},
                     "provenance": {"generator": {"prior_artifact_id": 2}, "seed": 0}} if kind == "generated" else {}
            zoo.add_weights(get_adapter(arch).build(arch).state_dict(), CheckpointMeta(
                arch=arch, task=task, dataset=dataset, kind=kind, metrics=(Metric("acc", acc, dataset),), extra=extra))


def _wait_up(url: str, server: subprocess.Popen, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"igpg-zoo serve exited with {server.returncode}: {server.stderr.read().decode()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"igpg-zoo serve did not answer {url} within {seconds} s")


def _not_blank(png: bytes) -> tuple[float, int]:
    """(pixel standard deviation, distinct colours) of a PNG screenshot."""
    import io

    from matplotlib import image

    pixels = image.imread(io.BytesIO(png), format="png")[..., :3]
    colours = np.unique((pixels.reshape(-1, 3) * 255).astype(np.uint8), axis=0)
    return float(pixels.std()), len(colours)


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"),
                    reason="no chromium binary (apt-get install chromium); CI installs it and never skips this")
def test_search_and_model_card_in_a_real_browser(tmp_path):
    assert CHROMIUM is not None, "CI must install Debian's chromium (.ci/run)"
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is in the dev extra")
    _tiny_registry(tmp_path / "registry.db")
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "igpg_zoo", "serve", "--port", str(port),
                               "--registry", str(tmp_path / "registry.db")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_up(f"{base}/api/summary", server)
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(base + "/")
            page.fill("#q", "handwritten digits classifier")
            page.click("#go")
            page.wait_for_selector("tr.result-row", timeout=30_000)
            rows = page.locator("tr.result-row").count()
            groups = page.locator(".group h3").all_inner_texts()
            page.locator("tr.result-row:has(.kind.generated)").first.click()
            page.wait_for_selector("#card-title", timeout=30_000)
            title = page.inner_text("#card-title")
            card = page.inner_text("#card")
            exports = page.locator("#card .buttons a").all_inner_texts()
            page.locator("#charts img").last.scroll_into_view_if_needed()
            page.wait_for_function("[...document.querySelectorAll('#charts img')].every(i => i.naturalWidth > 0)",
                                   timeout=60_000)
            shot = page.screenshot(path=str(tmp_path / "serve.png"), full_page=True)
            page.goto(base + "/docs")  # the OpenAPI page renders offline
            page.wait_for_selector(".opblock", timeout=30_000)
            operations = page.locator(".opblock-summary-path").all_inner_texts()
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    keep = os.environ.get("IGPG_ZOO_SCREENSHOT_DIR")
    if keep:
        shutil.copy(tmp_path / "serve.png", os.path.join(keep, "serve-browser.png"))
    assert rows >= 3 and groups[0] == "handwritten digit recognition"
    assert title.startswith("#3 ") and "safetensors" in exports
    assert "Provenance (generated)" in card and "nearest member" in card and "null" not in card
    assert "/api/query" in operations and "/api/records/{record_id}/export" in operations
    spread, colours = _not_blank(shot)
    assert spread > 0.05 and colours > 50, (spread, colours)
