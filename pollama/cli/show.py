"""``pollama show``'s info view: the sections Ollama prints for a model."""

from __future__ import annotations

from typing import Any

from pollama.cli.tables import render_table
from pollama.gocompat.human import human_number

__all__ = ["render_show_info"]


def _number(value: Any) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _go_value(value: Any) -> str:
    """A metadata value as Go's ``%v`` prints it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + " ".join(_go_value(item) for item in value) + "]"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _abbreviated(items: list[Any], width: int = 10) -> str:
    shown, total = 0, 1
    for index, item in enumerate(items):
        item_width = len(_go_value(item)) + (2 if index else 0)
        if total + item_width > width and index:
            break
        total += item_width
        shown += 1
    if shown < len(items):
        return _go_value(items[:shown])[:-1] + f" ...+{len(items) - shown} more]"
    return _go_value(items)


def _head(text: str, count: int) -> list[list[str]]:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    rows = [["", line] for line in lines[:count]]
    if len(lines) > count:
        rows.append(["", "..."])
    return rows


def _section(title: str, rows: list[list[str]], *, column_limit: int = 30) -> str:
    return f"  {title}\n" + render_table(rows, column_limit=column_limit) + "\n"


def _model_rows(info: dict[str, Any]) -> list[list[str]]:
    details = info.get("details") or {}
    model_info = info.get("model_info")
    rows: list[list[str]] = []
    if info.get("remote_host"):
        rows += [["", "Remote model", info.get("remote_model", "")], ["", "Remote URL", info["remote_host"]]]
    if model_info is not None:
        arch = model_info.get("general.architecture") or ""
        if arch:
            rows.append(["", "architecture", arch])
        parameters = details.get("parameter_size") or ""
        if not parameters and isinstance(model_info.get("general.parameter_count"), int | float):
            parameters = human_number(int(model_info["general.parameter_count"]))
        if parameters:
            rows.append(["", "parameters", parameters])
        for key, label in (("context_length", "context length"), ("embedding_length", "embedding length")):
            value = model_info.get(f"{arch}.{key}")
            if isinstance(value, int | float):
                rows.append(["", label, _number(value)])
    else:
        rows.append(["", "architecture", details.get("family", "")])
        rows.append(["", "parameters", details.get("parameter_size", "")])
    rows.append(["", "quantization", details.get("quantization_level", "")])
    if info.get("requires"):
        rows.append(["", "requires", info["requires"]])
    return rows


def _projector_rows(projector: dict[str, Any]) -> list[list[str]]:
    arch = projector.get("general.architecture") or ""
    rows = [["", "architecture", arch]] if arch else []
    if isinstance(projector.get("general.parameter_count"), int | float):
        rows.append(["", "parameters", human_number(int(projector["general.parameter_count"]))])
    for suffix, label in (("embedding_length", "embedding length"), ("projection_dim", "dimensions")):
        for modality in ("vision", "audio"):
            value = projector.get(f"{arch}.{modality}.{suffix}")
            if isinstance(value, int | float):
                rows.append(["", label, _number(value)])
                break
    return rows


def render_show_info(info: dict[str, Any], *, verbose: bool) -> str:
    out = _section("Model", _model_rows(info))
    if info.get("capabilities"):
        out += _section("Capabilities", [["", capability] for capability in info["capabilities"]])
    if info.get("projector_info") is not None:
        out += _section("Projector", _projector_rows(info["projector_info"]))
    if info.get("parameters"):
        rows = [["", *line.split()] for line in info["parameters"].splitlines() if line]
        out += _section("Parameters", rows)
    model_info = info.get("model_info")
    if model_info is not None and verbose:
        rows = []
        for key in sorted(model_info):
            value = model_info[key]
            text = _abbreviated(value) if isinstance(value, list) else _go_value(value)
            rows.append(["", key, text])
        out += _section("Metadata", rows)
    if info.get("tensors") and verbose:
        rows = [["", t["name"], t["type"], _go_value(t["shape"])] for t in info["tensors"]]
        out += _section("Tensors", rows)
    if info.get("system"):
        out += _section("System", _head(info["system"], 2), column_limit=100)
    if info.get("license"):
        out += _section("License", _head(info["license"], 2), column_limit=100)
    return out
