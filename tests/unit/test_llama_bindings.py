"""pollama's calls into llama.cpp match the installed llama-cpp-python, so a signature change fails here.

llama-cpp-python declares each C function with ``argtypes``; a call with the wrong number of arguments
is a TypeError at best and a dead runner at worst (0.3.36 added ``n_vocab`` to
``llama_sampler_init_penalties``, and every request with a penalty killed the runner). These tests read
every ``llama_cpp.<name>(...)`` call in the package, compare it with the declaration, check that the
ctypes structures pollama fills lay out as the C headers shipped with the build say, and call the ggml
functions pollama binds itself.
"""

from __future__ import annotations

import ast
import ctypes
import shutil
import subprocess
from pathlib import Path

import llama_cpp
import llama_cpp.mtmd_cpp as mtmd
import pytest

from pollama.runner import ggml
from pollama.runner.model import set_fields

PACKAGE = Path(__file__).resolve().parents[2] / "pollama"
HEADERS = Path(llama_cpp.__file__).resolve().parents[1] / "include"
# The structures pollama creates or fills field by field.
STRUCTS = (
    "llama_model_params",
    "llama_context_params",
    "llama_batch",
    "llama_token_data",
    "llama_token_data_array",
    "llama_logit_bias",
    "llama_sampler_chain_params",
    "llama_model_quantize_params",
)
MTMD_STRUCTS = ("mtmd_context_params", "mtmd_input_text", "mtmd_input_part")
# The names pollama calls the bound modules by: llama.cpp's and its multimodal library's (mtmd).
MODULES: dict[str, object] = {"llama_cpp": llama_cpp, "mtmd": mtmd}


def llama_cpp_uses() -> list[tuple[str, object, str, ast.AST]]:
    """Every ``llama_cpp.<name>`` and ``mtmd.<name>`` in the package: (file:line, module, name, node)."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in MODULES:
                where = f"{path.relative_to(PACKAGE.parent)}:{node.lineno}"
                found.append((where, MODULES[node.value.id], node.attr, node))
    return found


def calls() -> list[tuple[str, object, str, ast.Call]]:
    result = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id in MODULES
            ):
                where = f"{path.relative_to(PACKAGE.parent)}:{node.lineno}"
                result.append((where, MODULES[node.func.value.id], node.func.attr, node))
    return result


def test_the_scan_finds_the_runner_calls() -> None:
    names = {name for _where, _module, name, _node in calls()}
    assert {"llama_decode", "llama_sampler_init_penalties", "llama_model_load_from_file"} <= names
    assert {"mtmd_init_from_file", "mtmd_tokenize_from_parts", "mtmd_encode_chunk"} <= names
    assert {"llama_adapter_lora_init", "llama_set_adapters_lora"} <= names


def test_every_name_pollama_uses_exists() -> None:
    missing = [f"{where}: {name}" for where, module, name, _node in llama_cpp_uses() if not hasattr(module, name)]
    assert not missing, f"llama-cpp-python {llama_cpp.__version__} lacks: {missing}"


def test_every_call_passes_the_declared_number_of_arguments() -> None:
    wrong = []
    for where, module, name, node in calls():
        function = getattr(module, name, None)
        if not isinstance(function, ctypes._CFuncPtr):
            continue  # a structure, an array type or a Python helper
        if any(isinstance(arg, ast.Starred) for arg in node.args) or node.keywords:
            wrong.append(f"{where}: {name} is called with *args or keywords, which cannot be checked")
            continue
        if len(node.args) != len(function.argtypes):
            wrong.append(f"{where}: {name} takes {len(function.argtypes)} arguments, called with {len(node.args)}")
    assert not wrong, "\n".join(wrong)


def test_the_adapter_calls_take_what_llama_h_declares() -> None:
    """The LoRA calls pass pointers a count cannot check: an adapter (``struct llama_adapter_lora *``), an
    array of them and an array of float scales. The bindings must declare those, as llama.h does."""
    header = " ".join((HEADERS / "llama.h").read_text().split())
    assert "llama_adapter_lora_init( struct llama_model * model, const char * path_lora);" in header
    assert (
        "llama_set_adapters_lora( struct llama_context * ctx, struct llama_adapter_lora ** adapters, "
        "size_t n_adapters, float * scales);"
    ) in header
    adapter = llama_cpp.llama_adapter_lora_p_ctypes
    assert issubclass(adapter, ctypes._Pointer)
    assert llama_cpp.llama_adapter_lora_init.argtypes == [llama_cpp.llama_model_p_ctypes, ctypes.c_char_p]
    assert llama_cpp.llama_adapter_lora_init.restype is adapter
    assert llama_cpp.llama_set_adapters_lora.argtypes == [
        llama_cpp.llama_context_p_ctypes,
        ctypes.POINTER(adapter),
        ctypes.c_size_t,
        ctypes.POINTER(ctypes.c_float),
    ]
    assert llama_cpp.llama_set_adapters_lora.restype is ctypes.c_int32
    # An array of what llama_adapter_lora_init returns is what the runner passes (runner/model.py).
    array = (adapter * 2)(adapter(), adapter())
    assert ctypes.sizeof(array) == 2 * ctypes.sizeof(ctypes.c_void_p)


def test_set_fields_refuses_a_field_the_structure_lacks() -> None:
    params = llama_cpp.llama_model_default_params()
    set_fields(params, use_extra_bufts=False, n_gpu_layers=3)
    assert (params.use_extra_bufts, params.n_gpu_layers) == (False, 3)
    with pytest.raises(TypeError, match="use_mmap"):
        set_fields(params, use_mmap=True)  # gone from llama_model_params in 0.3.36: load_mode says it


def _struct(name: str) -> type[ctypes.Structure]:
    return getattr(mtmd if name.startswith("mtmd_") else llama_cpp, name)  # type: ignore[no-any-return]


def layout_program() -> str:
    lines = ["#include <stdio.h>", "#include <stddef.h>", '#include "llama.h"', '#include "mtmd.h"', "int main(void) {"]
    for name in (*STRUCTS, *MTMD_STRUCTS):
        lines.append(f'    printf("{name} size %zu\\n", sizeof(struct {name}));')
        for field, *_type in _struct(name)._fields_:
            lines.append(f'    printf("{name} {field} %zu\\n", offsetof(struct {name}, {field}));')
    lines += ["    return 0;", "}"]
    return "\n".join(lines)


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler to read the headers with")
def test_structures_match_the_c_headers(tmp_path: Path) -> None:
    assert (HEADERS / "llama.h").is_file(), f"llama-cpp-python ships its headers in {HEADERS}"
    source, program = tmp_path / "layout.c", tmp_path / "layout"
    source.write_text(layout_program())
    compiled = subprocess.run(
        ["cc", "-I", str(HEADERS), str(source), "-o", str(program)], capture_output=True, text=True
    )
    assert compiled.returncode == 0, f"a ctypes field is not in the C structure:\n{compiled.stderr}"
    c_layout = subprocess.run([str(program)], capture_output=True, text=True, check=True).stdout.splitlines()
    python_layout = []
    for name in (*STRUCTS, *MTMD_STRUCTS):
        struct = _struct(name)
        python_layout.append(f"{name} size {ctypes.sizeof(struct)}")
        python_layout += [f"{name} {field} {getattr(struct, field).offset}" for field, *_type in struct._fields_]
    assert python_layout == c_layout


def test_ggml_functions_answer() -> None:
    llama_cpp.llama_backend_init()
    assert "CPU" in ggml.backend_names()
    info = ggml.system_info()
    assert info.startswith("CPU :") and "=" in info
    assert all(isinstance(name, str) and name for name in ggml.extra_buffer_types())


def test_dropping_an_extra_buffer_type_keeps_the_others() -> None:
    llama_cpp.llama_backend_init()
    before = ggml.extra_buffer_types()
    assert ggml.drop_extra_buffer_types(["no such buffer type"]) == []
    assert ggml.extra_buffer_types() == before
    if "AMX" in before:
        assert ggml.drop_extra_buffer_types(["AMX"]) == ["AMX"]
        assert ggml.extra_buffer_types() == [name for name in before if name != "AMX"]
