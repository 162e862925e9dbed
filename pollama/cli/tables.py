"""Tables laid out as Ollama's CLI lays them out (Go ``tablewriter`` v0.0.5, no borders).

Columns are padded to their widest cell and separated by four spaces; cells
wider than the column limit are word-wrapped with minimal raggedness.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.cells import cell_len

__all__ = ["render_table"]

PADDING = "    "
DEFAULT_WIDTH = 30
_TOO_LONG_PENALTY = 100_000


def _wrap_words(words: list[str], limit: int) -> list[list[str]]:
    """Break ``words`` into lines at most ``limit`` wide, minimizing the squared slack."""
    n = len(words)
    widths = [cell_len(word) for word in words]
    length = [[0] * n for _ in range(n)]
    for i in range(n):
        length[i][i] = widths[i]
        for j in range(i + 1, n):
            length[i][j] = length[i][j - 1] + 1 + widths[j]
    cost = [2**31 - 1] * n
    breaks = [0] * n
    for i in range(n - 1, -1, -1):
        if length[i][n - 1] <= limit:
            cost[i], breaks[i] = 0, n
            continue
        for j in range(i + 1, n):
            slack = limit - length[i][j - 1]
            candidate = slack * slack + cost[j]
            if length[i][j - 1] > limit:
                candidate += _TOO_LONG_PENALTY
            if candidate < cost[i]:
                cost[i], breaks[i] = candidate, j
    lines, i = [], 0
    while i < n:
        lines.append(words[i : breaks[i]])
        i = breaks[i]
    return lines


def _wrap(text: str, limit: int) -> list[str]:
    words = text.replace("\n", " ").split(" ")
    limit = max([limit, *(cell_len(word) for word in words)])
    return [" ".join(line) for line in _wrap_words(words, limit)]


def _cell_lines(text: str, column_limit: int) -> tuple[list[str], int]:
    """A cell's lines after wrapping, and the width it needs."""
    width = min(max(cell_len(line) for line in text.split("\n")), column_limit)
    lines = _wrap(" ".join(text.split("\n")), width)
    return lines, max([width, *(cell_len(line) for line in lines)])


def _pad(text: str, width: int) -> str:
    return text + " " * max(0, width - cell_len(text))


def _title(text: str) -> str:
    # tablewriter's header auto-format: underscores (and most dots) become spaces, upper case.
    chars = list(text)
    for i, ch in enumerate(chars):
        if ch == "_":
            chars[i] = " "
        elif ch == ".":
            before_ok = i == 0 or chars[i - 1].isdigit() or chars[i - 1] == " "
            after_ok = i == len(chars) - 1 or chars[i + 1].isdigit() or chars[i + 1] == " "
            if not (before_ok and after_ok):
                chars[i] = " "
    result = "".join(chars).strip()
    return (result or (" " if text else "")).upper()


def render_table(
    rows: Sequence[Sequence[str]], header: Sequence[str] | None = None, *, column_limit: int = DEFAULT_WIDTH
) -> str:
    widths: dict[int, int] = {}

    def measure(cells: Sequence[str]) -> list[list[str]]:
        out = []
        for column, text in enumerate(cells):
            lines, width = _cell_lines(text, column_limit)
            widths[column] = max(widths.get(column, 0), width)
            out.append(lines)
        return out

    header_cells = measure(header) if header else []
    body = [measure(row) for row in rows]
    output: list[str] = []

    if header_cells:
        last = len(widths) - 1
        for line in range(max(len(cell) for cell in header_cells)):
            parts = []
            for column in range(last + 1):
                cell = header_cells[column] if column < len(header_cells) else []
                text = cell[line] if line < len(cell) else ""
                parts.append(_pad(_title(text), widths[column]) + (" " if column == last else PADDING))
            output.append("".join(parts))

    for cells in body:
        height = max((len(cell) for cell in cells), default=0)
        padded = [cell + ["  "] * (height - len(cell)) for cell in cells]
        for line in range(height):
            output.append("".join(_pad(cell[line], widths[column]) + PADDING for column, cell in enumerate(padded)))
    return "".join(line + "\n" for line in output)
