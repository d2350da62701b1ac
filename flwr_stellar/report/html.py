"""The few HTML pieces both reports share: page shell, tables, inlined figures.

Every page is one file with no external reference at all (styles inline, images as data: URIs),
so it opens offline, can be mailed, and makes no network request.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display, no GUI toolkit
from matplotlib.figure import Figure

STYLE = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2em auto;max-width:1100px;
color:#222;padding:0 1em}
h1{font-size:1.6em}h2{font-size:1.25em;margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0;font-size:.9em}
td,th{border:1px solid #ddd;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f4f4f4}code{font-size:.85em}
.pass{color:#0a7d32;font-weight:bold}.fail{color:#b00020;font-weight:bold}
figure{margin:1em 0}figcaption{color:#555;font-size:.9em}img{max-width:100%}
.note{color:#555}
"""

# Marks the page when an image failed to decode (a self-check a reader and a test can see).
CHECK_SCRIPT = """
window.addEventListener('load',function(){var imgs=document.images,ok=0;
for(var i=0;i<imgs.length;i++){if(imgs[i].complete&&imgs[i].naturalWidth>0){ok++;}
else{imgs[i].insertAdjacentHTML('afterend','<p class="fail">figure failed to render</p>');}}
document.body.setAttribute('data-figures-rendered',ok+'/'+imgs.length);});
"""


def esc(value: object) -> str:
    return html.escape(str(value))


def table(headers: Sequence[str], rows: Iterable[Sequence[object]], raw: bool = False) -> str:
    """An HTML table; cells are escaped unless ``raw`` (for cells built here from escaped parts)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{c if raw else esc(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


class Figures:
    """Renders matplotlib figures to PNG once: written beside the page and inlined in it."""

    def __init__(self, directory: Path, prefix: str) -> None:
        self.directory = directory
        self.prefix = prefix
        self.written: list[Path] = []

    def new(self, width: float = 7.5, height: float = 3.6) -> Figure:
        return Figure(figsize=(width, height), dpi=100, layout="constrained")

    def html(self, fig: Figure, name: str, caption: str) -> str:
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        png = buf.getvalue()
        path = self.directory / f"{self.prefix}{name}.png"
        path.write_bytes(png)
        self.written.append(path)
        data = base64.b64encode(png).decode("ascii")
        return (
            f'<figure><img alt="{esc(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{esc(caption)}</figcaption></figure>"
        )


def round_axis(ax: Any) -> None:
    """Whole rounds on the x axis."""
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def page(title: str, sections: Sequence[str]) -> str:
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        f"<title>{esc(title)}</title><style>{STYLE}</style></head><body>"
        f"<h1>{esc(title)}</h1>" + "".join(sections) + f"<script>{CHECK_SCRIPT}</script>"
        "</body></html>"
    )


def short(text: str, n: int = 12) -> str:
    return text if len(text) <= 2 * n else f"{text[:n]}…{text[-4:]}"


def json_scalar(value: Any) -> str:
    return str(value) if not isinstance(value, float) else f"{value:g}"
