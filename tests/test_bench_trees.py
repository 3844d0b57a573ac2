"""The benches compare trees: one tree's script over another tree's code (``PYTHONPATH=<tree>``)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("agi", "blocklists", "callscreen", "dashboard", "harness")  # what the benches import

CHECK = """
import runpy, sys
from importlib.machinery import PathFinder
tree, packages, scripts = sys.argv[1], sys.argv[2].split(","), sys.argv[3:]
wrong = []
for script in scripts:
    runpy.run_path(script, run_name="bench_under_test")  # its imports and sys.path, not its main()
    for name in packages:
        spec = PathFinder.find_spec(name, sys.path)
        where = spec and (spec.origin or next(iter(spec.submodule_search_locations or ()), None))
        if not str(where).startswith(tree):
            wrong.append(f"{script}: {name} from {where}")
print("\\n".join(wrong))
"""


def test_every_bench_measures_the_code_pythonpath_names(tmp_path) -> None:
    """A bench run as ``PYTHONPATH=<tree> python bench/x.py`` imports ``<tree>``'s code, not its
    own tree's: a before/after comparison that silently measured one tree twice would compare
    nothing (a bench that put its own tree first did exactly that)."""
    tree = tmp_path / "other-tree"
    for name in PACKAGES:
        shutil.copytree(ROOT / name, tree / name, ignore=shutil.ignore_patterns("__pycache__"))
    scripts = sorted(str(p) for p in (ROOT / "bench").glob("*.py"))
    done = subprocess.run([sys.executable, "-c", CHECK, str(tree), ",".join(PACKAGES), *scripts], cwd=tmp_path,
                          env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == ""
