"""Sphinx configuration. Build: ``python -m sphinx -W --keep-going -b html docs docs/_build/html``."""

import sklearn_espro

project = "sklearn-espro"
author = "the sklearn-espro developers"
release = version = sklearn_espro.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "myst_parser",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "examples", "data", "README.md"]
suppress_warnings = ["myst.header"]  # results.md's tables start at level 2 after its title

autosummary_generate = False
autodoc_default_options = {"members": False}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
# Every class and function in the reference must have an Examples section (EX01), document
# its parameters (PR01, PR02) and have a summary (SS01, GL08); methods are checked only
# for a docstring.
numpydoc_validation_checks = {"EX01", "PR02", "SS01", "GL08", "PR01"}
numpydoc_validation_exclude = {r"\.__init__$", r"\.[A-Z]\w*\.\w+$"}

html_theme = "alabaster"
html_static_path = []
nitpicky = False
