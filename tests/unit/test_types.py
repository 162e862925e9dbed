"""The type checker, run as part of the test suite: mypy over the package with the project's configuration.

The configuration is ``[tool.mypy]`` in pyproject.toml: every module has its untyped functions checked, and the
service layer, the runner's wire protocol and the error types are checked strictly. mypy keeps its cache in
.mypy_cache (git-ignored), so a run after the first checks only what changed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_mypy_passes() -> None:
    pytest.importorskip("mypy", reason="mypy is not installed (it comes with the test extras)")
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
    )
    if result.returncode != 0:
        pytest.fail(f"mypy failed:\n{result.stdout}{result.stderr}", pytrace=False)
