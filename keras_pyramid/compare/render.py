"""A document as a list of blocks, and its two renderings: Markdown and one
self-contained HTML page. The report builds the blocks once, so its
report.md and report.html cannot say different things.

    content = [Heading(1, "Title"), Paragraph("..."), Table(("a", "b"), (("1", "2"),))]
    to_markdown(content), to_html(content)
"""

import base64
import dataclasses
import html
import os

PLOTS_FOLDER = "plots"  # beside the report: a Plot's link is PLOTS_FOLDER/NAME.png

# The intermediate: what both renderers draw from.

@dataclasses.dataclass(frozen=True)
class Heading:
    level: int
    text: str


@dataclasses.dataclass(frozen=True)
class Paragraph:
    text: str


@dataclasses.dataclass(frozen=True)
class Bullets:
    items: tuple


@dataclasses.dataclass(frozen=True)
class Table:
    headers: tuple
    rows: tuple


@dataclasses.dataclass(frozen=True)
class Code:
    text: str


@dataclasses.dataclass(frozen=True)
class Plot:
    """A PNG: `link` relative to the report's folder, `path` to read it from."""

    link: str
    path: str
    caption: str


def plot_blocks(plot_paths, name, caption):
    """[a Plot of the plot `name`], linked inside PLOTS_FOLDER, or [] when
    `plot_paths` ({name: path}, as plots.write_plots answers) lacks it."""
    path = plot_paths.get(name)
    if path is None:
        return []
    return [Plot(f"{PLOTS_FOLDER}/{os.path.basename(path)}", path, caption)]


# The renderers: one function per block type and format.

def to_markdown(content):
    """The blocks as Markdown; plots linked by their relative path."""
    return "\n\n".join(_MARKDOWN[type(block)](block) for block in content) + "\n"


def _markdown_table(table):
    """A pipe table, header row first."""
    lines = [_markdown_row(table.headers), "|" + "---|" * len(table.headers)]
    return "\n".join(lines + [_markdown_row(row) for row in table.rows])


def _markdown_row(cells):
    """One row of a pipe table."""
    # A | inside a cell would end it; a newline would end the row.
    return "| " + " | ".join(str(cell).replace("|", "\\|").replace("\n", " ")
                             for cell in cells) + " |"


_MARKDOWN = {
    Heading: lambda block: f"{'#' * block.level} {block.text}",
    Paragraph: lambda block: block.text,
    Bullets: lambda block: "\n".join(f"- {item}" for item in block.items),
    Table: _markdown_table,
    Code: lambda block: f"```\n{block.text}\n```",
    Plot: lambda block: f"![{block.caption}]({block.link})\n\n*{block.caption}*",
}

CSS = ("body{font-family:system-ui,sans-serif;max-width:80em;margin:2em auto;padding:0 1em;"
       "line-height:1.4}table{border-collapse:collapse;margin:1em 0;font-size:.9em}"
       "th,td{border:1px solid #bbb;padding:.2em .5em;text-align:left}th{background:#eee}"
       "img{max-width:100%}figure{margin:1em 0}figcaption{font-style:italic}"
       "pre{background:#f4f4f4;padding:.5em;overflow-x:auto}")


def to_html(content):
    """The blocks as one self-contained HTML page: inline CSS, the plots
    embedded as base64 data URIs, every text escaped."""
    title = next((block.text for block in content if isinstance(block, Heading)), "Comparison")
    body = "\n".join(_HTML[type(block)](block) for block in content)
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f"<title>{html.escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
            f"{body}\n</body>\n</html>\n")


def _html_table(table):
    """A <table> with a header row, every cell escaped."""
    head = "".join(f"<th>{html.escape(str(cell))}</th>" for cell in table.headers)
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(str(cell))}</td>" for cell in row)
                   + "</tr>\n" for row in table.rows)
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{rows}</tbody>\n</table>"


def _html_plot(plot):
    """A <figure> with the PNG embedded as a base64 data URI."""
    with open(plot.path, "rb") as f:
        data = base64.b64encode(f.read()).decode("ascii")
    caption = html.escape(plot.caption)
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{caption}">'
            f"<figcaption>{caption}</figcaption></figure>")


_HTML = {
    Heading: lambda block: f"<h{block.level}>{html.escape(block.text)}</h{block.level}>",
    Paragraph: lambda block: f"<p>{html.escape(block.text)}</p>",
    Bullets: lambda block: "<ul>\n" + "".join(f"<li>{html.escape(item)}</li>\n"
                                              for item in block.items) + "</ul>",
    Table: _html_table,
    Code: lambda block: f"<pre><code>{html.escape(block.text)}</code></pre>",
    Plot: _html_plot,
}
