"""The documentation: it builds with no warnings, and every public object has a runnable example."""

import importlib
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MODULES = ["augment", "geometry", "metrics"]  # the public modules; the rest is private (sklearn_espro/_core, _*.py)


def public_objects():
    import sklearn_espro

    seen = {name: getattr(sklearn_espro, name) for name in sklearn_espro.__all__}
    for module in MODULES:
        mod = importlib.import_module(f"sklearn_espro.{module}")
        seen.update({f"{module}.{name}": getattr(mod, name) for name in mod.__all__})
    return seen


@pytest.mark.parametrize("name", sorted(public_objects()))
def test_public_object_has_a_numpydoc_example(name):
    doc = inspect.getdoc(public_objects()[name]) or ""
    assert "Examples\n--------\n>>>" in doc, f"{name} has no numpydoc Examples section with a doctest"


@pytest.mark.slow
def test_docs_build_without_warnings(tmp_path):
    for package in ("sphinx", "numpydoc", "myst_parser"):
        pytest.importorskip(package)
    # the documented command, into a temporary folder
    run = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", "docs",
                          str(tmp_path / "html")], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-5000:]
    html = (tmp_path / "html" / "api.html").read_text()
    assert "ESPROClassifier" in html and "log_simplex_volume" in html
