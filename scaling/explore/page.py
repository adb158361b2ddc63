"""Write the explorer: one self-contained HTML file (page template, Plotly's JS, the data, the page logic).

Plotly's JavaScript comes from the installed ``plotly`` Python package and is inlined, so the file
opens by double-click with no network and no server (no CDN). The data is inlined as JSON in a
``<script type="application/json">`` block, escaped so no ``</script>`` can end it early.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from scaling.errors import ScalingError


def _asset(name: str) -> str:
    return resources.files("scaling.explore").joinpath(name).read_text(encoding="utf-8")


def plotly_js() -> str:
    """The minified plotly.js bundled with the ``plotly`` package."""
    try:
        from plotly.offline import get_plotlyjs
    except ImportError:
        raise ScalingError("the explorer needs the `plotly` package: pip install plotly") from None
    return get_plotlyjs()


def render_page(data: dict[str, Any]) -> str:
    """The page as one HTML string."""
    payload = json.dumps(data, allow_nan=False, separators=(",", ":")).replace("</", "<\\/")
    page = _asset("page.html")
    for marker, text in (
        ("/*PLOTLY_JS*/", plotly_js()),
        ("/*EXPLORER_DATA*/", payload),
        ("/*EXPLORER_JS*/", _asset("explorer.js")),
    ):
        head, sep, tail = page.partition(marker)
        if not sep:
            raise RuntimeError(f"page.html lacks the {marker} marker")
        page = head + text + tail  # not str.replace: the inserted text may contain other markers
    return page


def write_page(data: dict[str, Any], out: str | Path) -> Path:
    """Write the page to ``out`` (parent folders created); returns the path."""
    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(render_page(data), encoding="utf-8")
    except OSError as err:
        raise ScalingError(f"cannot write {out}: {err.strerror}") from None
    return out
