"""The search report as one static HTML page whose figures are PNG files beside it.

Figures are referenced by relative path, so the folder can be opened from disk, served as is, or
browsed in the MLflow UI under the parent run's ``report/`` artifacts. Every text is escaped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Sequence

STYLE = """
body { font-family: sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
img { max-width: 100%; }
.note { color: #555; font-style: italic; }
"""


@dataclass(frozen=True)
class Section:
    """A heading with, in this order, any of: an explanation, a figure, a table, notes."""

    title: str
    text: str = ""
    figure: str | None = None  # file name beside report.html
    table: Sequence[Sequence[str]] = ()  # first row: the header
    notes: Sequence[str] = field(default_factory=tuple)


def _table(rows: Sequence[Sequence[str]], header: bool = True) -> str:
    """An HTML table; its first row is the header unless ``header`` is false."""
    head = "<tr>" + "".join(f"<th>{escape(cell)}</th>" for cell in rows[0]) + "</tr>" if header else ""
    body = rows[1:] if header else rows
    lines = ["<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in row) + "</tr>" for row in body]
    return f"<table>{head}{''.join(lines)}</table>"


def _section(section: Section) -> str:
    parts = [f"<h2>{escape(section.title)}</h2>"]
    if section.text:
        parts.append(f"<p>{escape(section.text)}</p>")
    if section.figure:
        parts.append(f'<img src="{escape(section.figure)}" alt="{escape(section.title)}">')
    if section.table:
        parts.append(_table(section.table))
    parts += [f'<p class="note">{escape(note)}</p>' for note in section.notes]
    return "\n".join(parts)


def write_html(path: Path, title: str, summary: Sequence[tuple[str, str]], sections: Sequence[Section]) -> Path:
    """Write the page: a title, a key-value summary table, then the sections in order."""
    body = "\n".join(_section(section) for section in sections)
    page = (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{escape(title)}</title>\n'
        f"<style>{STYLE}</style>\n</head>\n<body>\n<h1>{escape(title)}</h1>\n"
        f"{_table(summary, header=False)}\n{body}\n</body>\n</html>\n"
    )
    path.write_text(page, encoding="utf-8")
    return path
