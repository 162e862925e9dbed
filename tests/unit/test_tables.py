"""Tables as Ollama's CLI prints them: Go ``tablewriter`` v0.0.5 configured as in ``cmd/cmd.go``
(``SetBorder(false)``, ``SetNoWhiteSpace(true)``, ``SetTablePadding("    ")``, left alignment,
no header line; column width 30, or 100 for ``ollama show``'s Template/System/License sections).

Expected strings are worked out by hand from ``table.go`` / ``wrap.go``:

* header cells: ``PadRight(Title(h), width)`` followed by the padding, except a single space after
  the last column;
* row cells: ``PadRight(cell, width)`` followed by the padding, after every column (trailing too);
* a row's shorter cells are filled with ``"  "`` lines (two spaces, padded to the column width);
* cells are re-flowed (newlines become spaces) and wrapped with minimal raggedness at
  ``min(widest line, limit)``, or at the longest word when that is wider.
"""

from __future__ import annotations

import pytest

from pollama.cli.tables import render_table

P = "    "  # table padding


def sp(n: int) -> str:
    return " " * n


def lines(*rows: str) -> str:
    return "".join(row + "\n" for row in rows)


def test_list_table() -> None:
    # ollama list: NAME (15 wide), ID (12), SIZE (6), MODIFIED (11)
    out = render_table(
        [
            ["llama3.2:latest", "a80c4f17acd5", "2.0 GB", "2 weeks ago"],
            ["smollm2:135m", "9077e6b4a0d1", "270 MB", "3 days ago"],
        ],
        header=["NAME", "ID", "SIZE", "MODIFIED"],
    )
    assert out == lines(
        "NAME" + sp(11) + P + "ID" + sp(10) + P + "SIZE" + sp(2) + P + "MODIFIED" + sp(3) + " ",
        "llama3.2:latest" + P + "a80c4f17acd5" + P + "2.0 GB" + P + "2 weeks ago" + P,
        "smollm2:135m" + sp(3) + P + "9077e6b4a0d1" + P + "270 MB" + P + "3 days ago" + sp(1) + P,
    )
    assert out.splitlines()[0] == "NAME               ID              SIZE      MODIFIED    "


def test_header_only() -> None:
    assert render_table([], header=["NAME", "ID", "SIZE", "MODIFIED"]) == "NAME    ID    SIZE    MODIFIED \n"


def test_ps_header_is_wider_than_cells() -> None:
    out = render_table(
        [["m:latest", "0123456789ab", "1 GB", "100% GPU", "4096", "4 minutes from now"]],
        header=["NAME", "ID", "SIZE", "PROCESSOR", "CONTEXT", "UNTIL"],
    )
    assert out == lines(
        "NAME" + sp(4) + P + "ID" + sp(10) + P + "SIZE" + P + "PROCESSOR" + P + "CONTEXT" + P + "UNTIL" + sp(13) + " ",
        "m:latest"
        + P
        + "0123456789ab"
        + P
        + "1 GB"
        + P
        + "100% GPU "
        + P
        + "4096"
        + sp(3)
        + P
        + "4 minutes from now"
        + P,
    )


def test_show_section_rows_start_with_an_empty_cell() -> None:
    # ollama show: no header; the empty first column makes every row start with the padding
    out = render_table(
        [
            ["", "architecture", "llama"],
            ["", "parameters", "134.52M"],
            ["", "context length", "8192"],
            ["", "embedding length", "576"],
            ["", "quantization", "Q8_0"],
        ]
    )
    assert out == lines(
        P + "architecture" + sp(4) + P + "llama" + sp(2) + P,
        P + "parameters" + sp(6) + P + "134.52M" + P,
        P + "context length" + sp(2) + P + "8192" + sp(3) + P,
        P + "embedding length" + P + "576" + sp(4) + P,
        P + "quantization" + sp(4) + P + "Q8_0" + sp(3) + P,
    )


def test_single_column_rows() -> None:
    # Capabilities section: one value per row
    out = render_table([["", "completion"], ["", "tools"]])
    assert out == lines(P + "completion" + P, P + "tools" + sp(5) + P)


def test_wrap_at_30_columns() -> None:
    # 40 characters: wrapped at min(40, 30); minimal raggedness gives 27 + 12; the column is 30 wide.
    # The empty first cell gets a "  " filler line, so the continuation is indented by two more.
    out = render_table([["", "Apache License Version 2.0, January 2004"]])
    assert out == lines(P + "Apache License Version 2.0," + sp(3) + P, "  " + P + "January 2004" + sp(18) + P)


def test_wrap_at_100_columns() -> None:
    text = "Apache License Version 2.0, January 2004"
    assert render_table([["", text]], column_limit=100) == P + text + P + "\n"


def test_wrap_long_license_line_at_100() -> None:
    words = ["word"] * 25  # 124 characters
    out = render_table([["", " ".join(words)]], column_limit=100)
    # lengths: 20 words = 99; optimal split keeps the last line non-empty: 20 + 5 words
    first, second = " ".join(words[:20]), " ".join(words[20:])
    assert out == lines(P + first + sp(1) + P, "  " + P + second + sp(100 - len(second)) + P)


def test_wrap_is_minimal_raggedness_not_greedy() -> None:
    # WrapWords at 6: greedy would give "aaa bb" / "cc" / "ddddd"; the optimum is "aaa" / "bb cc" / "ddddd".
    out = render_table([["aaa bb cc ddddd"]], column_limit=6)
    assert out == lines("aaa" + sp(3) + P, "bb cc" + sp(1) + P, "ddddd" + sp(1) + P)


def test_cell_exactly_at_limit_is_not_wrapped() -> None:
    cell = "a" * 14 + " " + "b" * 15  # 30
    assert render_table([[cell]]) == cell + P + "\n"


def test_cell_one_over_limit_wraps_and_column_keeps_limit_width() -> None:
    cell = "a" * 15 + " " + "b" * 15  # 31
    assert render_table([[cell]]) == lines("a" * 15 + sp(15) + P, "b" * 15 + sp(15) + P)


def test_word_longer_than_limit_widens_column() -> None:
    # The longest word (35) becomes the wrap limit and the column width; the filler "  " in the
    # one-character first column is wider than that column and is not truncated.
    out = render_table([["x", "a" * 35 + " b"]])
    assert out == lines("x" + P + "a" * 35 + P, "  " + P + "b" + sp(34) + P)


def test_newlines_are_reflowed() -> None:
    # widest line is 9, so "hello world foo" wraps at 9
    out = render_table([["k", "hello\nworld foo"]])
    assert out == lines("k" + P + "hello" + sp(4) + P, "  " + P + "world foo" + P)


def test_multiple_spaces_are_kept() -> None:
    assert render_table([["a  b", "c"]]) == "a  b" + P + "c" + P + "\n"


def test_header_title_formatting() -> None:
    # tablewriter's Title: "_" -> " ", "." -> " " unless between digits/spaces, trimmed, upper case;
    # widths come from the raw header text
    out = render_table(
        [["1", "2", "3", "4", "5"]],
        header=["context_length", "v1.2", "a.b", "___", "_x_"],
    )
    assert out == lines(
        "CONTEXT LENGTH" + P + "V1.2" + P + "A B" + P + sp(3) + P + "X" + sp(2) + " ",
        "1" + sp(13) + P + "2" + sp(3) + P + "3" + sp(2) + P + "4" + sp(2) + P + "5" + sp(2) + P,
    )


@pytest.mark.parametrize(
    ("header", "title"),
    [
        ("name", "NAME"),
        ("NAME", "NAME"),
        ("size_vram", "SIZE VRAM"),
        ("1.5", "1.5"),
        (".5", ".5"),
        ("1.x", "1 X"),
        ("a.", "A"),
        ("v1.2.3", "V1.2.3"),
        ("1 .2", "1 .2"),
    ],
)
def test_header_titles(header: str, title: str) -> None:
    width = len(header)
    line = render_table([], header=[header])
    assert line == title.ljust(width) + " \n"


def test_rows_with_more_columns_than_the_header() -> None:
    assert render_table([["x", "y"]], header=["A"]) == lines("A" + P + " " + " ", "x" + P + "y" + P)


def test_rows_of_different_lengths() -> None:
    out = render_table([["a", "b", "c"], ["dd"]])
    assert out == lines("a " + P + "b" + P + "c" + P, "dd" + P)


def test_wide_characters() -> None:
    # go-runewidth counts CJK characters and emoji as two columns
    out = render_table([["你好", "x"], ["abc", "y"], ["👋", "z"]])
    assert out == lines("你好" + P + "x" + P, "abc" + sp(1) + P + "y" + P, "👋" + sp(2) + P + "z" + P)


def test_empty_table() -> None:
    assert render_table([]) == ""


def test_empty_cells() -> None:
    assert render_table([["", ""]]) == P + P + "\n"
