"""Atomic outputs: all or nothing, with the permissions any other file of the user would get."""

from __future__ import annotations

import os

import pytest

from cmdnet.atomic import atomic_path, write_text


def test_output_appears_only_on_success_and_nothing_is_left_behind(tmp_path):
    target = tmp_path / "out" / "table.csv"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed mid-write")
    assert not target.exists() and list(target.parent.iterdir()) == []
    write_text(target, "whole\n")
    assert target.read_text() == "whole\n"


def test_outputs_follow_the_umask_not_mkstemps_private_mode(tmp_path):
    old = os.umask(0o022)
    try:
        write_text(tmp_path / "shared.txt", "x")
    finally:
        os.umask(old)
    assert (tmp_path / "shared.txt").stat().st_mode & 0o777 == 0o644, "group/others must be able to read results"
