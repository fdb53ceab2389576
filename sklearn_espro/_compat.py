"""What older versions offered and this one keeps working until 0.5: one concern, easy to delete.

Version 0.3 stored three parallel lists (``simplexes_``, ``sample_coords_``,
``sample_buffers_``) and ``history_``; 0.4 stores ``members_`` and derives the rest.
Versions up to 0.4.0 made every internal module public (``sklearn_espro.training``,
``sklearn_espro.estimator``, ...); they now live in the private core and import under their
old names, with a FutureWarning, so that old code and pickles keep working.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

from ._core.prediction import Member

__all__ = ["Version03Attributes", "MOVED_MODULES", "install_moved_modules"]

_CORE = ("simplex", "batchnorm", "prediction", "training", "growing", "modes", "members", "landscape")
_TOOLS = ("estimator", "modules", "volume", "planes", "complexes", "curves")
#: old public module path -> where it lives now
MOVED_MODULES = {
    **{f"sklearn_espro.{name}": f"sklearn_espro._core.{name}" for name in _CORE},
    **{f"sklearn_espro.{name}": f"sklearn_espro._{name}" for name in _TOOLS},
}


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports a module path of :data:`MOVED_MODULES` as the module it names, with a FutureWarning."""

    def find_spec(self, fullname, path=None, target=None):
        return importlib.util.spec_from_loader(fullname, self) if fullname in MOVED_MODULES else None

    def create_module(self, spec):
        return None  # a placeholder, replaced in exec_module

    def exec_module(self, module):
        target = MOVED_MODULES[module.__name__]
        warnings.warn(f"{module.__name__} is private since version 0.4.1 and its old name will be removed in "
                      "version 0.5: import public names from sklearn_espro, sklearn_espro.geometry or "
                      f"sklearn_espro.metrics (it now lives in {target}).", FutureWarning, stacklevel=2)
        # the import system returns what sys.modules holds under the name once this returns
        sys.modules[module.__name__] = importlib.import_module(target)


def install_moved_modules() -> None:
    """Let the old module paths import (idempotent; only names in :data:`MOVED_MODULES`)."""
    if not any(isinstance(finder, _MovedModules) for finder in sys.meta_path):
        sys.meta_path.append(_MovedModules())


class Version03Attributes:
    """Mixin for :class:`~sklearn_espro.ESPROClassifier`: the deprecated attributes, and
    pickles of version 0.3 converted to ``members_`` when they load."""

    @property
    def sample_coords_(self) -> list:
        warnings.warn("sample_coords_ is deprecated and will be removed in version 0.5: use "
                      "[m.coords for m in members_].", FutureWarning, stacklevel=2)
        return [m.coords for m in self.members_]

    @property
    def sample_buffers_(self) -> list:
        warnings.warn("sample_buffers_ is deprecated and will be removed in version 0.5: use "
                      "[m.buffers for m in members_].", FutureWarning, stacklevel=2)
        return [m.buffers for m in self.members_]

    def __setstate__(self, state):
        if "simplexes_" in state and "members_" not in state:  # pickled by version 0.3 or older
            simplexes, coords = state.pop("simplexes_"), state.pop("sample_coords_")
            buffers, history = state.pop("sample_buffers_"), state.pop("history_", [])
            state["members_"] = [
                Member(s, c, b, [{k: v for k, v in r.items() if k != "simplex"} for r in history if r["simplex"] == j])
                for j, (s, c, b) in enumerate(zip(simplexes, coords, buffers))
            ]
        state.setdefault("warm_start", False)  # pickled before version 0.4.1
        # pickled before issues 20 and 21: the parameters added since, as those versions trained
        for name, value in (("max_grad_norm", None), ("augment", None), ("validation_fraction", None),
                            ("batchnorm_rows", None)):
            state.setdefault(name, value)
        super().__setstate__(state)
