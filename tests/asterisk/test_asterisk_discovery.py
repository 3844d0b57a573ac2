"""Finding an Asterisk: the environment variable wins and must name a real one; none found skips."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.pbx import BUNDLE, ENV_DIR, AsteriskMisconfigured, AsteriskUnavailable, Installation


def test_a_folder_named_in_the_environment_that_is_no_asterisk_fails_loudly(tmp_path: Path) -> None:
    with pytest.raises(AsteriskMisconfigured, match=ENV_DIR):
        Installation.find({ENV_DIR: str(tmp_path)})


def test_an_install_prefix_is_read_like_a_bundle(tmp_path: Path) -> None:
    (tmp_path / "sbin").mkdir()
    (tmp_path / "sbin" / "asterisk").write_text("#!/bin/sh\n")
    (tmp_path / "sbin" / "asterisk").chmod(0o755)
    modules = tmp_path / "lib" / "asterisk" / "modules"
    modules.mkdir(parents=True)
    (modules / "res_agi.so").write_bytes(b"")
    (tmp_path / "share" / "asterisk" / "documentation").mkdir(parents=True)
    found = Installation.find({ENV_DIR: str(tmp_path)})
    assert (found.binary, found.modules, found.data) == (
        tmp_path / "sbin" / "asterisk", modules, tmp_path / "share" / "asterisk")


def test_a_prefix_without_modules_is_unavailable(tmp_path: Path) -> None:
    (tmp_path / "sbin").mkdir()
    with pytest.raises(AsteriskUnavailable, match=r"res_agi\.so"):
        Installation.at(tmp_path)


@pytest.mark.skipif(not BUNDLE.is_dir(), reason=f"no bundle at {BUNDLE}")
def test_the_bundle_beside_the_repository_is_found_without_the_variable() -> None:
    assert Installation.find({}).binary == BUNDLE.resolve() / "sbin" / "asterisk"
