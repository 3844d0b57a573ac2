"""The README's first screening, run as a new user would: after ``make run`` seeded the demo, in
a fresh data folder, each ``$ callscreen …`` command of its console block, output compared line
by line (``…`` in the README stands for a variable part such as an id)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def console_session(section: str) -> list[tuple[str, list[str]]]:
    """(command, expected output lines) for each ``$`` line of the section's console block."""
    text = README.read_text().split(f"## {section}", 1)[1]
    block = text.split("```console\n", 1)[1].split("```", 1)[0]
    steps: list[tuple[str, list[str]]] = []
    lines = iter(block.splitlines())
    for line in lines:
        if line.startswith("$ "):
            command = line[2:]
            while command.endswith("\\"):
                command = command[:-1] + next(lines).strip()
            steps.append((command, []))
        else:
            steps[-1][1].append(line)
    return steps


def matches(expected: str, actual: str) -> bool:
    pattern = ".+?".join(re.escape(part) for part in expected.split("…"))
    return re.fullmatch(pattern, actual) is not None


def test_the_readme_first_screening_prints_what_the_readme_shows(tmp_path):
    steps = console_session("A first screening")
    assert len(steps) >= 3
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLSCREEN_")}
    env["CALLSCREEN_DATA_DIR"] = str(tmp_path / "var")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    subprocess.run(["callscreen", "demo", "seed"], env=env, cwd=tmp_path, check=True, capture_output=True)
    for command, expected in steps:
        argv = shlex.split(command)
        assert argv[0] == "callscreen", command
        result = subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, (command, result.stderr)
        actual = result.stdout.splitlines()
        assert len(actual) == len(expected), (command, actual)
        for want, got in zip(expected, actual, strict=True):
            assert matches(want, got), f"{command}\n README: {want}\n actual: {got}"
