"""Write the README's "Works with" table from the client matrix's last run (tests/clients).

    python -m pytest tests/clients && python -m tools.works_with

The matrix leaves its outcomes in ``$POLLAMA_CLIENT_MATRIX`` (default ``.pytest_cache/client-matrix.json``):
per client, the version that ran and each everyday path with its outcome. The table replaces what stands
between the README's ``works-with`` markers; nothing in it is written by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

__all__ = ["render", "replace_section"]

START, END = "<!-- works-with:start -->", "<!-- works-with:end -->"
NAMES = {
    "ollama": "`ollama` (Python)",
    "npm:ollama": "ollama-js (npm `ollama`)",
    "openai": "`openai` (Python)",
    "npm:openai": "`openai` (npm)",
    "anthropic": "`anthropic` (Python)",
    "langchain-ollama": "LangChain `langchain-ollama`",
    "llama-index-llms-ollama": "LlamaIndex `llama-index-llms-ollama`",
    "llama-index-embeddings-ollama": "LlamaIndex `llama-index-embeddings-ollama`",
    "litellm": "LiteLLM",
}


def render(results: dict[str, Any]) -> str:
    """The Markdown table of a matrix run."""
    rows = ["| Client | Version tested | Works | Not working in the last run |", "|---|---|---|---|"]
    clients = results["clients"]
    for name in sorted(clients, key=lambda key: list(NAMES).index(key) if key in NAMES else len(NAMES)):
        entry = clients[name]
        paths = entry["paths"]
        works = ", ".join(path for path, outcome in paths.items() if outcome == "passed") or "—"
        other = ", ".join(f"{path} ({outcome})" for path, outcome in paths.items() if outcome != "passed") or "—"
        rows.append(f"| {NAMES.get(name, name)} | {entry['version']} | {works} | {other} |")
    return "\n".join(rows)


def replace_section(readme: str, table: str) -> str:
    if START not in readme or END not in readme:
        raise ValueError(f"the README has no {START} … {END} section")
    before, rest = readme.split(START, 1)
    _, after = rest.split(END, 1)
    return f"{before}{START}\n{table}\n{END}{after}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default = os.environ.get("POLLAMA_CLIENT_MATRIX") or ".pytest_cache/client-matrix.json"
    parser.add_argument("--results", type=Path, default=Path(default))
    parser.add_argument("--readme", type=Path, default=Path("README.md"))
    args = parser.parse_args()
    if not args.results.exists():
        sys.exit(f"{args.results}: no matrix run yet (python -m pytest tests/clients)")
    table = render(json.loads(args.results.read_text()))
    args.readme.write_text(replace_section(args.readme.read_text(), table))
    print(table)


if __name__ == "__main__":
    main()
