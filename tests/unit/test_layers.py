"""The package's folders form layers: imports between them point one way, with no cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import pollama

ROOT = Path(pollama.__file__).parent


def _folder(module: str) -> str:
    """``pollama.server.routes.chat`` → ``server``; a root module is its own folder (``config``)."""
    return module.split(".")[1] if module.count(".") else ""


def folder_imports() -> dict[str, set[str]]:
    """Which folders each folder imports, from every import statement (also those inside functions)."""
    graph: dict[str, set[str]] = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        source = parts[0]
        targets = graph.setdefault(source, set())
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            for name in names:
                target = _folder(name) if name.startswith("pollama.") else ""
                if target and target != source and ((ROOT / target).is_dir() or (ROOT / f"{target}.py").exists()):
                    targets.add(target)
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    visiting: list[str] = []
    done: set[str] = set()

    def visit(node: str) -> list[str] | None:
        if node in visiting:
            return [*visiting[visiting.index(node) :], node]
        if node in done:
            return None
        visiting.append(node)
        for target in sorted(graph.get(node, ())):
            if found := visit(target):
                return found
        visiting.pop()
        done.add(node)
        return None

    for node in sorted(graph):
        if found := visit(node):
            return found
    return None


def test_no_import_cycle_between_folders() -> None:
    assert _cycle(folder_imports()) is None, " → ".join(_cycle(folder_imports()) or ())


def test_the_cycle_finder_finds_one() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_the_domain_knows_nothing_of_the_web() -> None:
    for folder in ("service", "runtime", "runner", "model", "store", "templates", "compat"):
        assert "server" not in folder_imports().get(folder, set()), f"{folder}/ imports server/"
        for path in (ROOT / folder).rglob("*.py"):
            text = path.read_text()
            assert "import fastapi" not in text and "from fastapi" not in text, path


def test_no_route_imports_another_route() -> None:
    routes = ROOT / "server" / "routes"
    for path in routes.glob("*.py"):
        assert "pollama.server.routes" not in path.read_text(), path
