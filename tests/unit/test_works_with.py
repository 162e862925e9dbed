"""tools.works_with: the README's "Works with" table, written from a client-matrix run."""

from __future__ import annotations

import pytest

from tools.works_with import END, START, render, replace_section

RUN = {
    "clients": {
        "litellm": {"version": "1.2.3", "paths": {"stream": "passed", "tools": "failed"}},
        "ollama": {"version": "0.6.3", "paths": {"chat": "passed", "embed": "passed"}},
        "npm:ollama": {"version": "0.6.4", "paths": {"list": "skipped"}},
    }
}


def test_the_table_lists_clients_in_a_fixed_order_with_what_works_and_what_did_not() -> None:
    header, rule, *rows = render(RUN).splitlines()
    assert header.startswith("| Client | Version tested |") and rule.startswith("|---")
    assert rows == [
        "| `ollama` (Python) | 0.6.3 | chat, embed | — |",
        "| ollama-js (npm `ollama`) | 0.6.4 | — | list (skipped) |",
        "| LiteLLM | 1.2.3 | stream | tools (failed) |",
    ]


def test_the_section_between_the_markers_is_replaced_and_nothing_else() -> None:
    readme = f"# Title\n\n{START}\nold table\n{END}\n\nmore\n"
    assert replace_section(readme, "NEW") == f"# Title\n\n{START}\nNEW\n{END}\n\nmore\n"
    with pytest.raises(ValueError, match="works-with"):
        replace_section("# no markers\n", "NEW")
