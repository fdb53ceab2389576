"""What ESPROClassifier and ESPRORegressor share: the parameters, ``fit`` and the fitted members.

The estimator contract lives in :class:`ESPROBase`: ``fit`` checks everything before
anything trains, runs one job per member (a mode and its simplex, or the missing vertices
of a fitted one under ``warm_start``) and keeps the members; the subclasses say what the
targets are (:meth:`ESPROBase._targets`), how the first network is checked and what
prediction means.
"""

from __future__ import annotations

import copy
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from functools import partial
from numbers import Integral, Real
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state
from sklearn.utils.parallel import Parallel, delayed
from sklearn.utils.validation import check_array, check_is_fitted, validate_data
from torch import nn

from ._compat import Version03Attributes
from ._core.global_state import own_global_rng
from ._core.members import fit_simplex, grow_member, sample_members
from ._core.rows import StreamedRows, as_rows, is_streamed, streamed_input
from ._core.validation import (
    Interval,
    RoutedParamsMixin,
    StrOptions,
    build_module,
    check_augment,
    check_batchnorm_batch,
    check_callbacks,
    check_no_bools,
    check_optimizer,
    check_X_y,
    resolve_device,
)
from ._starts import (
    MAX_SEED, check_warm_start, initial_modules, optimizer_arguments, split_validation, training_settings,
    with_fit_call,
)

__all__ = ["ESPROBase", "Targets"]


@dataclass
class Targets:
    """What ``fit`` trains on, from ``y``: built by a subclass's :meth:`ESPROBase._targets`."""

    y: np.ndarray  # what the networks train on: class indices, or standardised float32 targets
    n_outputs: int  # the module's outputs (a class's ``n_classes`` argument)
    n_classes: int | None  # None for a regressor
    criterion_kwargs: dict[str, Any]
    attributes: dict[str, Any] = field(default_factory=dict)  # fitted attributes: classes_, or y's scale


class ESPROBase(Version03Attributes, RoutedParamsMixin, BaseEstimator):
    """The shared machinery of the ESPRO estimators (not an estimator itself)."""

    _parameter_constraints: dict = {
        "module": [type, nn.Module],
        "n_modes": [Interval(Integral, 1, None, closed="left")],
        "n_vertices": [Interval(Integral, 1, None, closed="left")],
        "volume_reg": [Interval(Real, 0, None, closed="left")],
        "n_train_samples": [Interval(Integral, 1, None, closed="left")],
        "n_samples": [Interval(Integral, 1, None, closed="left")],
        "max_epochs": [Interval(Integral, 0, None, closed="left")],
        "vertex_epochs": [Interval(Integral, 0, None, closed="left")],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "vertex_lr": [Interval(Real, 0, None, closed="neither")],
        "vertex_schedule": [StrOptions({"cosine", "constant"})],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "predict_batch_size": [Interval(Integral, 1, None, closed="left")],
        "max_grad_norm": [Interval(Real, 0, None, closed="neither"), None],
        "batchnorm_rows": [Interval(Integral, 2, None, closed="left"), None],
        "augment": [callable, None],
        "optimizer": [type],
        "criterion": [type],
        "callbacks": [list, None],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither"), None],
        "device": [StrOptions({"auto"}), str, torch.device],
        "n_jobs": [Integral, None],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "modes": [list, tuple, None],
        "warm_start": ["boolean"],
    }
    _STREAMS = True  # fit and prediction stream a torch Dataset or a numpy memmap
    _INTEGERS = ("n_modes", "n_vertices", "n_train_samples", "n_samples", "max_epochs", "vertex_epochs",
                 "batch_size", "predict_batch_size", "n_jobs", "batchnorm_rows")

    # -- what a subclass says ----------------------------------------------------------
    def _validate_fit_data(self, X, y) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def _targets(self, y: np.ndarray) -> Targets:
        raise NotImplementedError

    def _check_criterion(self, targets: Targets) -> None:
        raise NotImplementedError

    def _check_module(self, module: nn.Module, X: np.ndarray, targets: Targets) -> None:
        raise NotImplementedError

    def _check_warm_targets(self, targets: Targets) -> None:
        raise NotImplementedError

    def _after_fit(self, X: np.ndarray, targets: Targets) -> None:
        """Anything fitted from the members (a regressor's noise level)."""

    # -- fitting ----------------------------------------------------------------------
    def fit(self, X, y=None):
        """Train the modes, grow their simplexes, and fix the models used for prediction.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...), numpy memmap or torch Dataset
            Cast to float32; 2-D for MLPs, 3-D or 4-D for convolutional networks. A
            memmap or map-style ``Dataset`` (classifier) is read a minibatch at a time.
        y : array-like of shape (n_samples,) or (n_samples, n_targets), or None
            Class labels of any type (classifier), or numbers (regressor). ``None`` when
            ``X`` is a ``Dataset`` of ``(input, target)`` pairs.

        Returns
        -------
        self
        """
        before = dict(self.__dict__)
        try:
            return self._fit(X, y)
        except BaseException:  # an error, NaN loss or Ctrl-C leaves the estimator as it was
            self.__dict__.clear()
            self.__dict__.update(before)
            raise

    def _fit(self, X, y):
        # 1. everything is checked before anything trains
        self._validate_params()
        check_no_bools(self, self._INTEGERS)
        if self.n_jobs == 0:
            raise ValueError("The 'n_jobs' parameter must be None, a positive int, or a negative int (-1: all "
                             "cores), as in joblib; got 0.")
        self._check_routed()
        if self._streamed(X):  # a Dataset or memmap: read a batch at a time, never copied whole
            X, y = self._validate_streamed(X, y, fit=True)
        else:
            X, y = self._validate_fit_data(X, y)
        targets = self._targets(y)
        device = resolve_device(self.device)
        optimizer_kwargs = optimizer_arguments(self.optimizer, self._routed("optimizer__"))
        check_optimizer(self.optimizer, optimizer_kwargs)
        self._check_criterion(targets)
        check_callbacks(self.callbacks, validation=self.validation_fraction is not None,
                        classifier=targets.n_classes is not None)
        mode, vertex = training_settings(self.get_params(deep=False), optimizer_kwargs, targets.n_classes,
                                         targets.criterion_kwargs)
        fitted = list(self.members_) if self.warm_start and hasattr(self, "members_") else []
        if fitted:
            check_warm_start(self, fitted, X.shape[1:])
            self._check_warm_targets(targets)
        rng = check_random_state(self.random_state)
        if isinstance(X, StreamedRows):  # its loaders' worker seeds, drawn from a copy: rng's draws stay as they are
            X.seed = int(copy.deepcopy(rng).randint(MAX_SEED)) + 1
        build = partial(self._build, X.shape[1], targets.n_outputs)
        with own_global_rng(device):
            modules, pretrained = initial_modules(build, self.n_modes, self.modes, rng)
            self._check_module(modules[0], X, targets)
            check_augment(self.augment, X, device)
            seeds = rng.randint(MAX_SEED, size=len(modules))
            grow_seeds = rng.randint(MAX_SEED, size=len(fitted))  # new vertices of fitted members
        X, targets, valid = self._split_validation(X, targets, rng)  # nothing below sees the held-out rows
        # 2. one job per new member, or per fitted member with missing vertices
        common = {"n_vertices": self.n_vertices, "n_samples": self.n_samples, "vertex": vertex, "device": device,
                  "verbose": self.verbose}
        jobs = {j: delayed(grow_member)(m, X, targets.y, seed=int(grow_seeds[j]), name=f"simplex {j}", **common)
                for j, m in enumerate(fitted) if m.simplex.n_vertices < self.n_vertices}
        jobs.update({j: delayed(fit_simplex)(modules[j], X, targets.y, seed=int(seeds[j]), name=f"simplex {j}",
                                             pretrained=pretrained, mode=mode, valid=valid, **common)
                     for j in range(len(fitted), len(modules))})
        results = dict(zip(jobs, Parallel(n_jobs=self.n_jobs)(jobs.values())))
        call = max((r.get("fit", 0) for m in fitted for r in m.history), default=-1) + 1
        self.__dict__.update(targets.attributes)
        self._input_shape = X.shape[1:]
        self.members_ = [fitted[j] if j not in results else with_fit_call(results[j], call, fitted[j:j + 1])
                         for j in range(len(modules))]
        self.log_volumes_ = np.array([float(m.simplex.log_volume()) for m in self.members_])
        self._after_fit(X, targets)
        return self

    def _split_validation(self, X: np.ndarray, targets: Targets, rng) -> tuple[np.ndarray, Targets, tuple | None]:
        """The rows and targets that train, and the held-out ``(X, y)`` (None without ``validation_fraction``)."""
        if self.validation_fraction is None:
            return X, targets, None
        seed = int(rng.randint(MAX_SEED))  # drawn after every other seed, which stay as they are without a split
        X_train, y_train, valid = split_validation(X, targets.y, self.validation_fraction, seed,
                                                   classes=targets.attributes.get("classes_"))
        return X_train, replace(targets, y=y_train), valid

    @property
    def simplexes_(self) -> list:
        return [m.simplex for m in self.members_]

    @property
    def history_(self) -> list[dict[str, Any]]:
        return [{"simplex": j, "fit": 0, **record} for j, m in enumerate(self.members_) for record in m.history]

    def _build(self, n_features_in: int, n_outputs: int) -> nn.Module:
        return build_module(self.module, self._routed("module__"), n_features_in=n_features_in, n_classes=n_outputs)


    def __sklearn_is_fitted__(self):
        return hasattr(self, "members_")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True  # (n, channels, length) for convolutional modules
        return tags

    def _streamed(self, X) -> bool:
        """Whether ``X`` is read a batch at a time: a Dataset, or a memmap when this estimator streams."""
        return is_streamed(X) and (self._STREAMS or not isinstance(X, np.memmap))

    def _validate_streamed(self, X, y, *, fit: bool) -> tuple[StreamedRows, Any]:
        """A Dataset or memmap checked and viewed as rows read on demand (``rows.streamed_input``)."""
        if not self._STREAMS:
            raise ValueError(f"{type(self).__name__} takes X in memory (an array; a memmap is read into memory); "
                             "a torch Dataset is accepted by ESPROClassifier.")
        loader = {"train": self._routed("iterator_train__"), "valid": self._routed("iterator_valid__")}
        with own_global_rng():  # a dataset's transforms may draw from torch's global generator
            rows, y = streamed_input(X, y, loader=loader, fit=fit)
        if fit:
            y = check_array(y, ensure_2d=False, dtype=None, input_name="y")
            if y.ndim == 2 and y.shape[1] == 1:
                y = y.ravel()
            self.n_features_in_ = rows.sample_shape[0]
            self.__dict__.pop("feature_names_in_", None)
        return rows, y

    # -- shared by prediction -----------------------------------------------------------
    def _validate_X(self, X) -> np.ndarray | StreamedRows:
        check_is_fitted(self)
        if self._streamed(X):
            X, _ = self._validate_streamed(X, None, fit=False)
        else:
            X = check_X_y(partial(validate_data, self), X, reset=False, allow_nd=True, dtype=np.float32)
        if X.shape[1:] != self._input_shape:
            raise ValueError(
                f"X has samples of shape {X.shape[1:]}, but {type(self).__name__} was fitted on "
                f"samples of shape {self._input_shape}."
            )
        return X

    def sample_models(self, n_models, *, X=None, random_state=None):
        """Plain networks drawn uniformly from the simplexes (round-robin over simplexes).

        Parameters
        ----------
        n_models : int
            At least 0.
        X : array-like of shape (n_samples, ...), numpy memmap or torch Dataset, default=None
            Data on which BatchNorm statistics of each model are recomputed; required
            when the module has BatchNorm layers and the simplexes have more than one vertex.
            As in ``fit``, at most ``batchnorm_rows`` rows of it are used, drawn once per
            simplex from ``random_state`` (all rows when ``batchnorm_rows=None``).
        random_state : int, RandomState instance or None, default=None

        Returns
        -------
        list of nn.Module
            On the CPU, in evaluation mode.
        """
        check_is_fitted(self)
        if isinstance(n_models, (bool, np.bool_)) or not isinstance(n_models, Integral) or n_models < 0:
            raise ValueError(f"n_models must be a non-negative int, got {n_models!r}.")
        seed = int(check_random_state(random_state).randint(MAX_SEED))
        X_t = None if X is None else as_rows(self._validate_X(X))
        if X_t is not None:
            check_batchnorm_batch(self.simplexes_[0].module, self.batch_size, len(X_t))
        # statistics over batches of the training batch size, as fit computes them
        with own_global_rng() if isinstance(X_t, StreamedRows) else nullcontext():  # a dataset's transforms may draw
            return sample_members(self.simplexes_, n_models, X_t, self.batch_size, seed, self.batchnorm_rows)
