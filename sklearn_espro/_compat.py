"""What version 0.3 fitted estimators had and 0.4 keeps working until 0.5: one concern, easy to delete.

Version 0.3 stored three parallel lists (``simplexes_``, ``sample_coords_``,
``sample_buffers_``) and ``history_``; 0.4 stores ``members_`` and derives the rest.
"""

from __future__ import annotations

import warnings

from .prediction import Member

__all__ = ["Version03Attributes"]


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
        super().__setstate__(state)
