"""The live dashboard the API serves at ``/dashboard``: one page, charts drawn by Chart.js (pinned in
``chart.js.version``, fetched from the npm registry by ``infra/install.sh`` into the cache dir)."""

from __future__ import annotations

from pathlib import Path

from warehouse_models.settings import Settings

HERE = Path(__file__).resolve().parent
PAGE = HERE / "index.html"
CHART_JS_VERSION = (HERE / "chart.js.version").read_text().strip()


def chart_js_path(settings: Settings) -> Path:
    """Where install.sh unpacks Chart.js's browser build."""
    return settings.cache_dir / "npm" / f"chart.js-{CHART_JS_VERSION}" / "package" / "dist" / "chart.umd.js"
