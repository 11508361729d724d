"""Names neutralised for the outputs they reach: Markdown (report.md, probe.md) and CSV.

Arm, study, dataset, model and class names are free text, so any of them may hold HTML
(``<img src=x onerror=…>``), Markdown (``|``, ``[…](…)``) or a spreadsheet formula (``=1+1``).

* Markdown: :func:`markdown_document` escapes ``&``, ``<``, ``>``, ``[`` and ``]`` everywhere
  outside code spans (inside one, CommonMark shows text literally), so no name renders as HTML
  or a link in a Markdown preview (Jupyter, VS Code, GitHub); :func:`md_cell` makes a name safe
  as a table cell (``|``, backslashes and line breaks). Lines that are ablate's own figure
  links (:func:`figure_line`) are left as they are.
* CSV (the OWASP "CSV injection" advice): :func:`csv_cell` prefixes ``'`` to a text cell that
  begins with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return (or with ``'`` followed by
  one of those, so that the prefix can always be taken off again); :func:`csv_uncell` takes it
  off, so a table ablate wrote reads back to the original names (``report --runs``, MLflow).

Pure functions on strings and pandas tables; nothing here writes files.
"""

from __future__ import annotations

import re
from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
CSV_PREFIX = "'"
_MD_SPECIAL = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "[": "\\[", "]": "\\]"}
_FIGURE_LINE = re.compile(r"!\[[A-Za-z0-9_.\-]+\]\(figures/[A-Za-z0-9_.\-]+\.png\)")
_SLUG_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]+")


# ------------------------------------------------------------------------------ CSV
def _needs_prefix(text: str) -> bool:
    if text.startswith(FORMULA_STARTS):
        return True
    return text.startswith(CSV_PREFIX) and _needs_prefix(text[1:])


def csv_cell(value: Any) -> Any:
    """A text cell safe to open in a spreadsheet: ``'`` before a leading formula character."""
    if isinstance(value, str) and _needs_prefix(value):
        return CSV_PREFIX + value
    return value


def csv_uncell(value: Any) -> Any:
    """The original text of a cell :func:`csv_cell` wrote (anything else is returned as it is)."""
    if isinstance(value, str) and value.startswith(CSV_PREFIX) and _needs_prefix(value[1:]):
        return value[1:]
    return value


def _text_columns(table) -> list:
    import pandas as pd

    return [c for c in table.columns
            if pd.api.types.is_object_dtype(table[c]) or pd.api.types.is_string_dtype(table[c])]


def csv_table(table):
    """A copy of a pandas table with every text cell (and header) passed through :func:`csv_cell`."""
    columns = _text_columns(table)
    out = table.copy()
    for column in columns:
        out[column] = out[column].map(csv_cell)
    return out.rename(columns=lambda c: csv_cell(c) if isinstance(c, str) else c)


def csv_untable(table):
    """The inverse of :func:`csv_table`, for a table read back with pandas."""
    out = table.rename(columns=lambda c: csv_uncell(c) if isinstance(c, str) else c)
    for column in _text_columns(out):
        out[column] = out[column].map(csv_uncell)
    return out


def read_csv(path, **kwargs):
    """``pandas.read_csv`` with ablate's CSV prefixes taken off again (see :func:`csv_untable`)."""
    import pandas as pd

    return csv_untable(pd.read_csv(path, **kwargs))


# ------------------------------------------------------------------------------ Markdown
def md_cell(value: Any) -> str:
    """Text for one cell of a Markdown table: backslashes and pipes escaped, no line breaks."""
    text = str(value).replace("\r\n", " ").replace("\n", " ").replace("\r", " ")
    return text.replace("\\", "\\\\").replace("|", "\\|")


def slug(text: str) -> str:
    """A file-name-safe form of a name (figure files), ``[A-Za-z0-9_.-]`` only."""
    return _SLUG_UNSAFE.sub("-", str(text)).strip("-.") or "x"


def figure_line(name: str, relative_path: str) -> str:
    """ablate's own Markdown image line for a figure, with a slug name and path."""
    return f"![{slug(name)}]({'/'.join(slug(p) for p in relative_path.split('/'))})"


def _escape_text(text: str) -> str:
    return "".join(_MD_SPECIAL.get(ch, ch) for ch in text)


def _escape_line(line: str) -> str:
    """Escape one line outside its code spans (CommonMark: a run of n backticks closes at the
    next run of exactly n; an unmatched run is literal text)."""
    out, i, n = [], 0, len(line)
    plain_start = 0
    while i < n:
        if line[i] != "`":
            i += 1
            continue
        j = i
        while j < n and line[j] == "`":
            j += 1
        run = j - i
        k = j
        close = -1
        while k < n:
            if line[k] == "`":
                m = k
                while m < n and line[m] == "`":
                    m += 1
                if m - k == run:
                    close = k
                    break
                k = m
            else:
                k += 1
        if close < 0:
            i = j  # an unmatched run: literal backticks, escaping continues after them
            continue
        out.append(_escape_text(line[plain_start:i]))
        out.append(line[i:close + run])  # the code span, verbatim
        i = plain_start = close + run
    out.append(_escape_text(line[plain_start:]))
    return "".join(out)


def markdown_document(text: str) -> str:
    """A whole Markdown document with HTML and link syntax neutralised outside code spans.

    Code spans are found per line (ablate writes none that spans lines). A line that is
    exactly one of ablate's figure lines (:func:`figure_line`) is kept as it is.
    """
    return "\n".join(line if _FIGURE_LINE.fullmatch(line) else _escape_line(line)
                     for line in text.split("\n"))
