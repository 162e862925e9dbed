"""A builtin named as an argument is called with no arguments, and a wrong count fails as Go's text/template does.

Go's evalArg hands an identifier to evalFunction with no arguments; evalCall then checks the count: a fixed-arity
function says ``want N got M`` (M counting a piped-in value), a variadic one ``want at least N got M`` (M counting
only the written arguments).
"""

from __future__ import annotations

import pytest

from pollama.templates.gotemplate import ExecError, Template


def _error(text: str, data: object = None) -> str:
    with pytest.raises(ExecError) as caught:
        Template(text, name="t").execute(data)
    return str(caught.value)


@pytest.mark.parametrize(
    ("text", "column", "name", "want"),
    [
        ("{{print not}}", 8, "not", "1 got 0"),
        ("{{print len}}", 8, "len", "1 got 0"),
        ("{{len printf}}", 6, "printf", "at least 1 got 0"),
        ("{{if eq .x ne}}{{end}}", 11, "ne", "2 got 0"),
        ("{{print (not)}}", 9, "not", "1 got 0"),
        ('{{"x" | ne}}', 8, "ne", "2 got 1"),
        ("{{index}}", 2, "index", "at least 1 got 0"),
    ],
)
def test_wrong_number_of_args(text: str, column: int, name: str, want: str) -> None:
    expected = f'template: t:1:{column}: executing "t" at <{name}>: wrong number of args for {name}: want {want}'
    assert _error(text, {"x": 1}) == expected


def test_a_variadic_builtin_as_an_argument_is_called_with_none() -> None:
    assert Template("{{print html}}|{{print (print)}}|{{len (print)}}", name="t").execute(None) == "||0"
