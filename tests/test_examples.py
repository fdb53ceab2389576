"""The documentation's examples run as written (docs/examples/*.py)."""

import runpy
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).resolve().parent.parent / "docs" / "examples").glob("*.py"))


def test_there_are_examples():
    assert {p.stem for p in EXAMPLES} >= {"quickstart", "grid_search", "loss_plane", "connect_modes"}


@pytest.mark.slow
@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs(path, tmp_path, monkeypatch, capsys):
    pytest.importorskip("matplotlib")
    monkeypatch.chdir(tmp_path)  # examples that save figures write them here
    runpy.run_path(str(path), run_name="__main__")
    assert capsys.readouterr().out.strip()  # each example prints what it found
