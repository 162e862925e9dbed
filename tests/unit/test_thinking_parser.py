"""The generic thinking parser (Ollama's thinking/parser_test.go cases, restated)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pollama.parsers.thinking import ThinkingParser
from pollama.templates.gotemplate import Template
from pollama.templates.model_template import infer_thinking_tags


def feed(pieces: list[str], *, opened: bool = False) -> tuple[str, str]:
    parser = ThinkingParser("<think>", "</think>", opened=opened)
    thinking, content = [], []
    for piece in pieces:
        t, c = parser.add(piece)
        thinking.append(t)
        content.append(c)
    t, c = parser.finish()
    return "".join(thinking) + t, "".join(content) + c


@pytest.mark.parametrize(
    ("pieces", "expected"),
    [
        (["<think>abc</think>def"], ("abc", "def")),
        (["  \n <think>\n  abc</think>\n\n def"], ("abc", "def")),
        (["<thi", "nk>a", "bc</th", "ink>", "  ", "def"], ("abc", "def")),
        (["no thinking <think>x</think>"], ("", "no thinking <think>x</think>")),
        (["  leading space kept"], ("", "  leading space kept")),
        (["<think>unfinished"], ("unfinished", "")),
        (["<think>a</thi"], ("a</thi", "")),
        (["<think>a</think>b</think>c"], ("a", "b</think>c")),
    ],
)
def test_splits_thinking_from_content(pieces: list[str], expected: tuple[str, str]) -> None:
    assert feed(pieces) == expected


def test_a_prompt_that_opens_the_tag_starts_inside_thinking() -> None:
    assert feed(["\n reasoning</think>answer"], opened=True) == ("reasoning", "answer")


def test_partial_tags_are_held_back_until_resolved() -> None:
    parser = ThinkingParser("<think>", "</think>")
    assert parser.add(" <th") == ("", "")
    assert parser.add("ink>abc </") == ("abc ", "")
    assert parser.add("x") == ("</x", "")


@given(st.text(alphabet="ab <>/thinkx\n", max_size=40), st.lists(st.integers(0, 40), max_size=6))
def test_any_split_gives_the_same_result(text: str, cuts: list[int]) -> None:
    points = sorted({min(cut, len(text)) for cut in cuts})
    pieces = [text[a:b] for a, b in zip([0, *points], [*points, len(text)], strict=True)]
    assert feed(pieces) == feed([text])


@pytest.mark.parametrize(
    ("template", "tags"),
    [
        (
            "{{ range .Messages }}{{ if .Thinking }}<think>{{ .Thinking }}</think>{{ end }}{{ .Content }}{{ end }}",
            ("<think>", "</think>"),
        ),
        ("{{ range .Messages }}{{ .Content }}{{ end }}", ("", "")),
        ("{{ if .Thinking }}<think>{{ .Thinking }}</think>{{ end }}", ("", "")),  # not inside range .Messages
        # the text around the field inside its enclosing list, trimmed
        (
            "{{ range $i, $m := .Messages }}{{ if .Thinking }}\n<reason> {{ .Thinking }} </reason>\n{{ end }}{{ end }}",
            ("<reason>", "</reason>"),
        ),
        # a field in a with/if pipe belongs to the list around that with/if
        ("{{ range .Messages }}{{ with .Thinking }}<r>{{ . }}</r>{{ end }}{{ end }}", ("", "")),
        # a variable's field is not a .Thinking field reference
        ("{{ range $m := .Messages }}{{ if 1 }}<r>{{ $m.Thinking }}</r>{{ end }}{{ end }}", ("", "")),
    ],
)
def test_tags_inferred_from_the_template(template: str, tags: tuple[str, str]) -> None:
    assert infer_thinking_tags(Template(template).tree.root) == tags
