"""What ``ESPROClassifier.fit`` prepares before its jobs: starting networks and class weights.

Plain functions over a ``build`` callable (``build() -> nn.Module``, freshly
initialised from the global torch RNG), so the estimator keeps only the contract.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from sklearn.utils.class_weight import compute_class_weight
from torch import nn

from ._validation import mode_state_dict

__all__ = ["MAX_SEED", "initial_modules", "seeded", "weighted_criterion_kwargs"]

MAX_SEED = np.iinfo(np.int32).max
Build = Callable[[], nn.Module]


def seeded(build: Build, seed: int) -> nn.Module:
    """``build()`` under ``torch.manual_seed(seed)``, leaving the global RNG as it was."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return build()


def initial_modules(build: Build, n_modes: int, modes: Sequence[Any] | None, rng) -> tuple[list[nn.Module], bool]:
    """``n_modes`` freshly initialised networks, or the pretrained ``modes`` loaded into new ones.

    Returns the networks and whether they are pretrained.
    """
    if modes is None:
        return [seeded(build, int(s)) for s in rng.randint(MAX_SEED, size=n_modes)], False
    if len(modes) == 0:
        raise ValueError("modes is empty; pass at least one pretrained network, or modes=None.")
    modules = []
    for i, mode in enumerate(modes):
        module = build()
        try:
            module.load_state_dict(mode_state_dict(mode, i))
        except RuntimeError as exc:
            raise ValueError(f"modes[{i}] does not fit the module {type(module).__name__}: {exc}") from exc
        modules.append(module)
    return modules, True


def weighted_criterion_kwargs(kwargs: dict[str, Any], class_weight, classes: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """The ``criterion__*`` arguments, with ``weight`` from scikit-learn's ``class_weight`` when given."""
    if class_weight is None:
        return kwargs
    if "weight" in kwargs:
        raise ValueError("Both class_weight and criterion__weight were given; pass one of them.")
    if isinstance(class_weight, dict):
        unknown = set(class_weight) - set(classes.tolist())
        if unknown:
            raise ValueError(f"class_weight names labels that are not in y: {sorted(unknown, key=str)}.")
    weights = compute_class_weight(class_weight, classes=classes, y=y)
    return {**kwargs, "weight": torch.tensor(weights, dtype=torch.float32)}
