"""The presets keep to the engine's size rule: no function over 60 lines, none over McCabe 15."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PRESETS = Path(__file__).resolve().parents[2] / "pipeline" / "presets"
MAX_LINES = 60
MAX_COMPLEXITY = 15


def test_no_preset_function_is_over_60_lines() -> None:
    too_long: list[str] = []
    for path in sorted(PRESETS.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_LINES:
                    too_long.append(f"{path.name}:{node.lineno} {node.name}: {length} lines")
    assert not too_long


def test_no_preset_function_is_over_mccabe_15() -> None:
    ruff = Path(sys.executable).parent / "ruff"
    result = subprocess.run(
        [str(ruff), "check", "--select", "C901", "--config",
         f"lint.mccabe.max-complexity={MAX_COMPLEXITY}", str(PRESETS)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
