"""``manytask select`` is a table tool: it runs without importing torch or scipy."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

EX = Path(__file__).resolve().parents[2] / "examples" / "standley"

SCRIPT = """
import json, sys
from manytask.cli import app
try:
    app(["select", sys.argv[1], "--test", sys.argv[2], "--budgets", "1:5:0.5"], prog_name="manytask")
except SystemExit as e:
    code = e.code
else:
    code = 0
print(json.dumps({"code": code, "torch": "torch" in sys.modules, "scipy": "scipy" in sys.modules}))
"""


def test_select_command_imports_neither_torch_nor_scipy() -> None:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(EX / "results.txt"), str(EX / "results_test.txt")],
        capture_output=True, text=True, timeout=120, check=True,
    )
    assert "optimal networks" in out.stdout
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res == {"code": 0, "torch": False, "scipy": False}


def test_grouping_package_loads_training_modules_on_first_use() -> None:
    code = (
        "import sys, manytask.grouping as g; a = 'torch' in sys.modules; "
        "f = g.group_search; print(a, 'torch' in sys.modules, callable(f), type(g.affinity).__name__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.split() == ["False", "True", "True", "module"]
