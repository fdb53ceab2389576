"""What ``ESPROClassifier.fit`` prepares before its jobs: labels, training settings,
starting networks, class weights and the validation split.

Plain functions over the estimator's parameters and a ``build`` callable (``build() ->
nn.Module``, freshly initialised from the global torch RNG), so the estimator keeps only
the contract.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from numbers import Real
from typing import Any

import numpy as np
import torch
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets
from torch import nn

from ._core.rows import StreamedRows
from ._core.validation import mode_state_dict
from ._core.members import VertexTraining
from ._core.prediction import Member
from ._core.modes import ModeTraining

__all__ = ["MAX_SEED", "check_warm_start", "encode_labels", "initial_modules", "optimizer_arguments", "seeded",
           "split_validation", "training_settings", "weighted_criterion_kwargs", "with_fit_call"]

MAX_SEED = np.iinfo(np.int32).max
Build = Callable[[], nn.Module]


def encode_labels(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The sorted classes of ``y`` and ``y`` as int64 class indices; at least two classes."""
    check_classification_targets(y)
    encoder = LabelEncoder().fit(y)
    if len(encoder.classes_) < 2:
        raise ValueError(f"y has a single class ({encoder.classes_[0]!r}); a classifier needs at least two.")
    return encoder.classes_, encoder.transform(y).astype(np.int64)


def optimizer_arguments(optimizer: type, routed: dict[str, Any]) -> dict[str, Any]:
    """The ``optimizer__*`` arguments; SGD gets momentum 0.9 and weight decay 5e-4 (the
    paper's recipe) unless they say otherwise."""
    kwargs = dict(routed)
    if optimizer is torch.optim.SGD:
        kwargs.setdefault("momentum", 0.9)
        kwargs.setdefault("weight_decay", 5e-4)
    return kwargs


def training_settings(params: dict[str, Any], optimizer_kwargs: dict[str, Any], n_classes: int | None,
                      criterion_kwargs: dict[str, Any]) -> tuple[ModeTraining, VertexTraining]:
    """How modes and vertices train, from the estimator's parameters and checked arguments."""
    p = params
    mode = ModeTraining(
        n_classes=n_classes, max_epochs=p["max_epochs"], lr=p["lr"], batch_size=p["batch_size"],
        optimizer=p["optimizer"], optimizer_kwargs=optimizer_kwargs, criterion=p["criterion"],
        criterion_kwargs=criterion_kwargs, callbacks=tuple(p["callbacks"] or ()), max_grad_norm=p["max_grad_norm"],
        augment=p["augment"], valid_batch_size=p["predict_batch_size"],
    )
    vertex = VertexTraining(
        epochs=p["vertex_epochs"], lr=p["vertex_lr"], schedule=p["vertex_schedule"], batch_size=p["batch_size"],
        n_train_samples=p["n_train_samples"], optimizer=p["optimizer"], optimizer_kwargs=optimizer_kwargs,
        criterion=p["criterion"](**criterion_kwargs), volume_reg=p["volume_reg"], max_grad_norm=p["max_grad_norm"],
        augment=p["augment"], batchnorm_rows=p["batchnorm_rows"],
    )
    return mode, vertex


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
        for label, weight in class_weight.items():
            if (isinstance(weight, (bool, np.bool_)) or not isinstance(weight, Real)
                    or not np.isfinite(weight) or weight <= 0):
                raise ValueError(f"class_weight[{label!r}] is {weight!r}; each class weight must be a positive, "
                                 "finite number (a class to ignore can be left out of y instead).")
    weights = compute_class_weight(class_weight, classes=classes, y=y)
    return {**kwargs, "weight": torch.tensor(weights, dtype=torch.float32)}


def split_validation(X: np.ndarray, y: np.ndarray, fraction: float | None, seed: int | None,
                     classes: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, tuple | None]:
    """The rows the networks train on, and the held-out ``(X_valid, y_valid)`` (``None`` when ``fraction`` is).

    ``ceil(fraction * n)`` rows are held out, as by scikit-learn's ``train_test_split`` seeded
    with ``seed``, stratified by class when ``classes`` (the labels of the class indices ``y``)
    is given; both parts keep the rows' order. Each part needs two rows, each class a row to train on.
    """
    if fraction is None:
        return X, y, None
    n_valid = math.ceil(fraction * len(X))
    if min(n_valid, len(X) - n_valid) < 2:
        raise ValueError(f"validation_fraction={fraction} holds out {n_valid} of the {len(X)} rows and leaves "
                         f"{len(X) - n_valid} to train on; each part needs at least 2 rows.")
    if classes is not None:
        counts = np.bincount(y, minlength=len(classes))
        if counts.min() < 2:
            raise ValueError(f"validation_fraction={fraction} splits the rows in the proportions of the classes, which "
                             f"needs two rows of each; class {classes.tolist()[counts.argmin()]!r} has 1. Pass more "
                             "rows of it, or validation_fraction=None.")
        if min(n_valid, len(X) - n_valid) < len(classes):
            raise ValueError(f"validation_fraction={fraction} holds out {n_valid} of the {len(X)} rows and leaves "
                             f"{len(X) - n_valid} to train on; split in the proportions of the {len(classes)} "
                             "classes, each part needs a row of each class.")
    train, valid = train_test_split(np.arange(len(X)), test_size=n_valid, random_state=seed,
                                    stratify=None if classes is None else y)
    train, valid = np.sort(train), np.sort(valid)
    if classes is not None and len(np.unique(y[train])) < len(classes):
        missing = classes.tolist()[np.setdiff1d(np.arange(len(classes)), y[train])[0]]
        raise ValueError(f"validation_fraction={fraction} leaves no row of class {missing!r} to train on; "
                         "use a smaller validation_fraction.")
    if isinstance(X, StreamedRows):  # views of the rows, nothing read
        return X.subset(train), y[train], (X.subset(valid), y[valid])
    return X[train], y[train], (X[valid], y[valid])


def check_warm_start(estimator, fitted: Sequence[Member], input_shape: tuple) -> None:
    """Raise ValueError unless a warm-started ``fit`` can add to ``fitted``: samples of the fitted
    shape, no fewer members or vertices than fitted (the targets are the subclass's to check)."""
    if input_shape != estimator._input_shape:
        raise ValueError(f"X has samples of shape {input_shape}, but the fitted members were trained on samples of "
                         f"shape {estimator._input_shape}; warm_start=True needs data of the same shape.")
    n_members = len(estimator.modes) if estimator.modes is not None else estimator.n_modes
    if n_members < len(fitted):
        name = "modes holds" if estimator.modes is not None else "n_modes is"
        raise ValueError(f"{name} {n_members}, but {len(fitted)} members are fitted: with warm_start=True a fit "
                         "can only add members (set warm_start=False to fit anew).")
    if estimator.modes is not None:  # the list may only grow at its end
        for j, (member, mode) in enumerate(zip(fitted, estimator.modes)):
            fitted_mode = {k: v[0] for k, v in member.simplex.vertices.items()}
            given = mode_state_dict(mode, j)
            if any(k in given and not torch.equal(given[k].detach().cpu().to(v.dtype), v) for k, v in fitted_mode.items()):
                raise ValueError(f"modes[{j}] is not the mode member {j} was fitted from: with warm_start=True the "
                                 "modes list may only gain networks at its end.")
    most = max(m.simplex.n_vertices for m in fitted)
    if estimator.n_vertices < most:
        raise ValueError(f"n_vertices={estimator.n_vertices}, but the fitted simplexes have {most} vertices: with "
                         "warm_start=True a fit can only add vertices (set warm_start=False to fit anew).")


def with_fit_call(member: Member, call: int, before: Sequence[Member]) -> Member:
    """``member`` with ``"fit": call`` in the records that this call added (those beyond ``before[0]``'s)."""
    kept = len(before[0].history) if before else 0
    history = [r if i < kept else {**r, "fit": call} for i, r in enumerate(member.history)]
    return Member(member.simplex, member.coords, member.buffers, history)
