"""The report as a document: sections of captioned figures and a summary table, rendered to one
self-contained HTML page (figures embedded as PNG, the style sheet inline, no scripts)."""

from __future__ import annotations

import base64
import html
import io
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from vaekit.atomic import atomic_file
from vaekit.report.style import CSS

DPI = 144  # PNG pixels per inch: sharp on high-density screens at a figure's size in inches
CSS_PX = 96  # CSS pixels per inch, so that a figure shows at its size in inches
WIDE = 8.0  # figures at least this many inches wide span the whole row of the grid
CODE_KEYS = {"command"}  # summary values shown as code
HEADLINE_KEYS = {"elbo", "log_likelihood"}


@dataclass
class Panel:
    """One figure of the report, rendered: PNG bytes, its size in inches, and its words."""

    title: str
    caption: str
    png: bytes
    size: tuple[float, float]

    @classmethod
    def from_figure(cls, fig: Figure, title: str, caption: str) -> Panel:
        """Render ``fig`` to PNG now, so that the report keeps bytes, not live figures."""
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=DPI, facecolor="white")
        return cls(title, caption, buffer.getvalue(), tuple(fig.get_size_inches()))

    def to_html(self) -> str:
        width, height = (round(v * CSS_PX) for v in self.size)
        data = base64.b64encode(self.png).decode("ascii")
        wide = ' class="wide"' if self.size[0] >= WIDE else ""
        return (
            f"<figure{wide}>"
            f'<img src="data:image/png;base64,{data}" width="{width}" height="{height}" '
            f'alt="{html.escape(self.title)}">'
            f"<figcaption><strong>{html.escape(self.title)}.</strong> "
            f"{html.escape(self.caption)}</figcaption></figure>"
        )


@dataclass
class Section:
    """A heading, a sentence on what the section shows, its figures and any notes."""

    key: str
    title: str
    intro: str = ""
    panels: list[Panel] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_html(self) -> str:
        parts = [f'<section id="{self.key}"><h2>{html.escape(self.title)}</h2>']
        if self.intro:
            parts.append(f'<p class="intro">{html.escape(self.intro)}</p>')
        parts += [f'<p class="note">{html.escape(note)}</p>' for note in self.notes]
        if self.panels:
            parts.append(
                '<div class="grid">' + "".join(p.to_html() for p in self.panels) + "</div>"
            )
        parts.append("</section>")
        return "\n".join(parts)


def add_figure(section: Section, title: str, caption: str, draw: Callable[[], Figure]) -> None:
    """Draw one figure into ``section``; a figure that does not apply to this model or data
    (a ValueError) becomes a note instead of failing the whole report."""
    try:
        section.panels.append(Panel.from_figure(draw(), title, caption))
    except ValueError as err:
        section.notes.append(f"{title}: not drawn ({err}).")


@dataclass
class Report:
    """A model's report: a summary table of its numbers and sections of figures.

    Attributes
    ----------
    title, subtitle : str
    summary : list of (key, label, text)
        The rows of the summary table.
    flagged : set of str
        Keys of summary rows shown as a warning (a simple baseline beat the model).
    numbers : dict
        The values behind it (ELBO, log-likelihood, active units, epochs...).
    sections : list of Section
    footer : str
    """

    title: str
    subtitle: str
    summary: list[tuple[str, str, str]]
    numbers: dict[str, Any]
    sections: list[Section]
    footer: str = ""
    flagged: set[str] = field(default_factory=set)  # summary rows to flag: a baseline won

    def _summary_html(self) -> str:
        rows = []
        for key, label, text in self.summary:
            value = f"<code>{html.escape(text)}</code>" if key in CODE_KEYS else html.escape(text)
            headline = ' class="headline"' if key in HEADLINE_KEYS else ""
            headline = ' class="flag"' if key in self.flagged else headline
            rows.append(
                f'<tr data-key="{key}"{headline}><th scope="row">{html.escape(label)}</th>'
                f"<td>{value}</td></tr>"
            )
        return (
            '<section id="summary"><h2>Summary</h2>'
            f'<table class="summary">{"".join(rows)}</table></section>'
        )

    def _nav_html(self) -> str:
        links = [("summary", "Summary")] + [(s.key, s.title) for s in self.sections]
        return (
            "<nav>" + "".join(f'<a href="#{k}">{html.escape(t)}</a>' for k, t in links) + "</nav>"
        )

    def to_html(self) -> str:
        """The whole page: nothing in it refers to another file or address."""
        body = "\n".join(s.to_html() for s in self.sections)
        return (
            "<!DOCTYPE html>\n"
            '<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(self.title)}</title><style>{CSS}</style></head>\n"
            f"<body><main><header><h1>{html.escape(self.title)}</h1>"
            f"<p>{html.escape(self.subtitle)}</p>{self._nav_html()}</header>\n"
            f"{self._summary_html()}\n{body}\n"
            f"<footer>{html.escape(self.footer)}</footer></main></body></html>\n"
        )

    def write(self, path: str | os.PathLike) -> Path:
        """Write the page to ``path`` atomically (a failure leaves no partial file)."""
        text = self.to_html()
        with atomic_file(path) as tmp:
            tmp.write_text(text, encoding="utf-8")
        return Path(path)
