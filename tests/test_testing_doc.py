"""docs/testing.md names the tests that prove each promise: every one it names must exist."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NAMED = re.compile(r"`(tests/[\w/]+\.py|…)(?:::(\w+))?`")


def test_every_test_named_in_docs_testing_exists() -> None:
    text = (ROOT / "docs" / "testing.md").read_text(encoding="utf-8")
    checked, path = 0, None
    for file, name in NAMED.findall(text):
        if file != "…":
            path = ROOT / file
            assert path.is_file(), file
        if name:
            assert path is not None, name
            assert re.search(rf"^(async )?def {name}\(", path.read_text(encoding="utf-8"), re.M), \
                f"{path.relative_to(ROOT)}::{name} is named in docs/testing.md but does not exist"
            checked += 1
    assert checked >= 30
