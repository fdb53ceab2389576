"""ESPRORegressor: simplex ensembles of Gaussian regression networks (Lakshminarayanan et al. 2017, ESPRO).

The shared contract (parameters, ``fit``, warm start, the fitted members) is
:class:`~sklearn_espro._base.ESPROBase`'s; this class standardises ``y``, trains on the
Gaussian negative log-likelihood and predicts the mixture of every drawn model's Gaussian.
"""

from __future__ import annotations

import warnings
from functools import partial

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.base import RegressorMixin
from sklearn.utils.validation import validate_data
from torch import nn

from ._base import ESPROBase, Targets
from ._core.prediction import member_outputs
from ._core.regression import GaussianNLLLoss, gaussian_moments, mixture_moments, standardize_targets
from ._core.validation import (
    check_batchnorm_batch, check_module_output, check_trainable, check_X_y, resolve_device,
)
from ._modules import MLP

__all__ = ["ESPRORegressor"]


class ESPRORegressor(RegressorMixin, ESPROBase):
    """Simplex ensemble (ESPRO) of any torch module, as a scikit-learn regressor.

    As :class:`~sklearn_espro.ESPROClassifier`, with each network predicting a Gaussian
    per target (Lakshminarayanan et al. 2017): ``y`` is standardised, the modes and
    vertices train on the Gaussian negative log-likelihood (Eq. 1 with it as the loss),
    and prediction is the mixture of the Gaussians of the ``n_samples`` models drawn from
    each simplex, every simplex weighing the same (Eq. 5 for densities).

    Parameters
    ----------
    module : nn.Module subclass or instance, default=MLP
        Maps a float32 batch of ``X`` to ``2 * n_targets`` outputs (the means, then raw
        variances made positive by ``softplus``) or to ``n_targets`` means (then a noise
        level per target is fitted, below). A class taking ``n_classes`` is built with
        ``n_classes=2 * n_targets`` unless given (``module__n_classes``).
    criterion : nn.Module subclass, default=GaussianNLLLoss
        Takes the outputs and the standardised targets (n, n_targets); returns the mean loss.
    n_modes, n_vertices, volume_reg, n_train_samples, n_samples, max_epochs, vertex_epochs, lr, vertex_lr, vertex_schedule, batch_size, max_grad_norm, augment, predict_batch_size, batchnorm_rows, optimizer, callbacks, validation_fraction, device, n_jobs, random_state, verbose, modes, warm_start, **kwargs
        As in :class:`~sklearn_espro.ESPROClassifier`, except ``lr=0.02`` and
        ``vertex_lr=0.005``: the lowest validation NLL of ESPRO on diabetes and Friedman #1
        among lr 0.02-0.1 and vertex_lr 0.005-0.02 (``benchmarks/regression.py
        --validation``, docs/results.md). Scale ``X`` (``StandardScaler``): SGD on a learnt
        variance diverges on inputs in the hundreds (a ``FloatingPointError`` says so).
        ``validation_fraction`` holds rows out at random (not stratified); the modes'
        ``valid_loss`` is in standardised units, and there is no ``valid_acc``.

    Attributes
    ----------
    n_features_in_ : int
    n_targets_ : int
    y_mean_, y_scale_ : ndarray of shape (n_targets,)
        The standardisation of ``y``, computed on ``y / max|y|`` so that targets of any
        scale float64 holds (1e-300 as 1e300) train as well as targets around 1. The scale
        of a constant target is 10 ulp of its value (of 1 when it is 0): it is predicted to
        machine precision.
    noise_var_ : ndarray of shape (n_targets,) or None
        For a means-only module: the mean squared residual of the ensemble's mean on the
        training data (the rows not held out by ``validation_fraction``; standardised
        units), the variance of every model's Gaussian.
    members_, simplexes_, log_volumes_, history_
        As in :class:`~sklearn_espro.ESPROClassifier`.

    References
    ----------
    B. Lakshminarayanan, A. Pritzel, C. Blundell. Simple and Scalable Predictive
    Uncertainty Estimation using Deep Ensembles. NeurIPS 2017.
    G. Benton, W. Maddox, S. Lotfi, A. G. Wilson. Loss Surface Simplexes for Mode
    Connecting Volumes and Fast Ensembling. ICML 2021.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_espro import ESPRORegressor
    >>> rng = np.random.RandomState(0)
    >>> X = rng.randn(80, 3)
    >>> y = X[:, 0] + 0.1 * rng.randn(80)
    >>> reg = ESPRORegressor(n_modes=2, n_vertices=2, max_epochs=5, vertex_epochs=1,
    ...                      module__hidden_sizes=(16,), random_state=0).fit(X, y)
    >>> mean, std = reg.predict(X[:3], return_std=True)
    >>> mean.shape, bool((std > 0).all())
    ((3,), True)
    """

    _STREAMS = False  # its noise level is fitted on every training row's outputs, in memory
    _parameter_constraints: dict = dict(ESPROBase._parameter_constraints)

    def __init__(
        self,
        module=MLP,
        *,
        n_modes=3,
        n_vertices=4,
        volume_reg=0.0,
        n_train_samples=1,
        n_samples=5,
        max_epochs=30,
        vertex_epochs=3,
        lr=0.02,
        vertex_lr=0.005,
        vertex_schedule="cosine",
        batch_size=64,
        max_grad_norm=10.0,
        augment=None,
        predict_batch_size=1024,
        batchnorm_rows=2048,
        optimizer=torch.optim.SGD,
        criterion=GaussianNLLLoss,
        callbacks=None,
        validation_fraction=None,
        device="auto",
        n_jobs=None,
        random_state=None,
        verbose=0,
        modes=None,
        warm_start=False,
        **kwargs,
    ):
        self.module = module
        self.n_modes = n_modes
        self.n_vertices = n_vertices
        self.volume_reg = volume_reg
        self.n_train_samples = n_train_samples
        self.n_samples = n_samples
        self.max_epochs = max_epochs
        self.vertex_epochs = vertex_epochs
        self.lr = lr
        self.vertex_lr = vertex_lr
        self.vertex_schedule = vertex_schedule
        self.batch_size = batch_size
        self.max_grad_norm = max_grad_norm
        self.augment = augment
        self.predict_batch_size = predict_batch_size
        self.batchnorm_rows = batchnorm_rows
        self.optimizer = optimizer
        self.criterion = criterion
        self.callbacks = callbacks
        self.validation_fraction = validation_fraction
        self.device = device
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.verbose = verbose
        self.modes = modes
        self.warm_start = warm_start
        self._kwargs = dict(kwargs)  # routed arguments; checked in fit

    # -- what ESPROBase.fit asks of a regressor -------------------------------------------
    def _validate_fit_data(self, X, y):
        if y is not None:  # None: scikit-learn's own message ("requires y to be passed")
            _check_targets(y)
        X, y = check_X_y(partial(validate_data, self), X, y, allow_nd=True, dtype=np.float32, ensure_min_samples=2,
                         y_numeric=True, multi_output=True)
        _check_finite(np.asarray(y, dtype=np.float64), "y contains infinity or NaN, or a value beyond float64's range")
        return X, y

    def _targets(self, y) -> Targets:
        y2 = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
        n_targets = y2.shape[1]
        if self.warm_start and hasattr(self, "members_") and self.n_targets_ == n_targets:
            mean, scale = self.y_mean_, self.y_scale_  # the fitted members' units
            with np.errstate(over="ignore", under="ignore", invalid="ignore"):
                y_train = ((y2 - mean) / scale).astype(np.float32)
            _check_finite(y_train, "y, standardised with the fitted members' y_mean_ and y_scale_ (warm_start=True), "
                                   "exceeds float32's range, in which the networks train: refit without warm_start")
        else:
            standardized, mean, scale = standardize_targets(y2)
            y_train = standardized.astype(np.float32)
        attributes = {"n_targets_": n_targets, "y_mean_": mean, "y_scale_": scale, "_y_ndim": np.ndim(y)}
        return Targets(y_train, 2 * n_targets, None, self._routed("criterion__"), attributes)

    def _check_criterion(self, targets: Targets) -> None:
        """Checked with the module's outputs, in :meth:`_check_module`."""

    def _check_module(self, module: nn.Module, X: np.ndarray, targets: Targets) -> None:
        check_trainable(module, self.n_vertices)
        check_batchnorm_batch(module, self.batch_size, len(X))
        t = targets.attributes["n_targets_"]
        width = check_module_output(module, X, None)
        if width not in (t, 2 * t):
            raise ValueError(f"The module {type(module).__name__} returned {width} outputs per sample; a regressor's "
                             f"module returns the {t} means, or the {t} means and {t} variances ({2 * t}).")
        targets.attributes["n_outputs_"] = width
        name = getattr(self.criterion, "__name__", repr(self.criterion))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # nn.MSELoss only warns when it broadcasts (4, 2t) against (4, t)
                out = self.criterion(**targets.criterion_kwargs)(torch.zeros(4, width), torch.zeros(4, t))
        except Exception as exc:
            hint = (f" A criterion for means only needs a module of {t} outputs (module__n_classes={t})."
                    if width == 2 * t else "")
            raise ValueError(f"criterion={name} failed on outputs of shape (4, {width}) and targets of shape "
                             f"(4, {t}): {type(exc).__name__}: {exc}.{hint}") from exc
        if not isinstance(out, torch.Tensor) or out.ndim != 0 or not torch.isfinite(out):
            raise ValueError(f"criterion={name} must reduce outputs and targets to one finite number; got {out!r}.")

    def _check_warm_targets(self, targets: Targets) -> None:
        t = targets.attributes["n_targets_"]
        if t != self.n_targets_:
            raise ValueError(f"y has {t} targets, but the fitted members were trained on {self.n_targets_}; "
                             "warm_start=True needs the same targets.")

    def _after_fit(self, X: np.ndarray, targets: Targets) -> None:
        self.noise_var_ = None
        if self.n_outputs_ == self.n_targets_:
            mean, _ = self._moments(X)
            self.noise_var_ = ((targets.y - mean.numpy()) ** 2).mean(0)

    # -- prediction -------------------------------------------------------------------
    @torch.no_grad()
    def _moments(self, X: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """The mixture's mean and variance in standardised units: (n_samples, n_targets) each."""
        device = resolve_device(self.device, fallback=True)
        noise = None if self.noise_var_ is None else torch.as_tensor(self.noise_var_)
        means, variances, weights = [], [], []
        for member in self.members_:
            out = member_outputs(member, torch.from_numpy(X), self.predict_batch_size, device)
            mean, var = gaussian_moments(out, self.n_targets_, noise)
            means.append(mean)
            variances.append(var)
            weights.append(torch.full((len(out),), 1.0 / (len(out) * len(self.members_)), dtype=torch.float64))
        return mixture_moments(torch.cat(means), torch.cat(variances), torch.cat(weights))

    def predict(self, X, return_std=False):
        """The mean of the predictive mixture, and its standard deviation with ``return_std``.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)
        return_std : bool, default=False

        Returns
        -------
        y_mean : ndarray of shape (n_samples,) or (n_samples, n_targets)
        y_std : ndarray of the same shape
            Only with ``return_std=True``: the mixture's standard deviation (the spread of
            the members' means and their own variances), in the units of ``y``.

        Raises
        ------
        FloatingPointError
            When the module returns NaN or infinite outputs for some rows of ``X``, or when
            a prediction in the units of ``y`` exceeds float64's range.
        """
        X = self._validate_X(X)
        mean, var = (m.numpy() for m in self._moments(X))
        bad = np.flatnonzero(~(np.isfinite(mean).all(1) & np.isfinite(var).all(1)))
        if len(bad):
            raise FloatingPointError(f"The module returned non-finite outputs for {len(bad)} of {len(X)} rows of X "
                                     f"(the first is row {bad[0]}).")
        with np.errstate(over="ignore", invalid="ignore"):
            mean = mean * self.y_scale_ + self.y_mean_
            std = np.sqrt(var) * self.y_scale_
        bad = np.flatnonzero(~(np.isfinite(mean).all(1) & np.isfinite(std).all(1)))
        if len(bad):
            raise FloatingPointError(f"The predictions for {len(bad)} of {len(X)} rows of X (the first is row "
                                     f"{bad[0]}) exceed float64's range in the units of y (y_scale_={self.y_scale_}).")
        if self._y_ndim == 1:
            mean, std = mean[:, 0], std[:, 0]
        return (mean, std) if return_std else mean

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags


def _check_targets(y) -> None:
    """Refuse targets that are not real numbers, naming ``y``, before scikit-learn's checks.

    Those let sparse ``y``, strings and object arrays holding ``None`` (read as NaN after
    their finiteness check) through to errors of their own or to a NaN training loss.
    """
    if sp.issparse(y):
        raise TypeError(f"y is a sparse matrix ({type(y).__name__}); ESPRORegressor takes dense targets: "
                        "pass y.toarray().")
    try:
        y = np.asarray(y)
    except (TypeError, ValueError) as exc:  # ragged nested sequences
        raise ValueError(f"y must be an array of numbers of shape (n_samples,) or (n_samples, n_targets): "
                         f"{exc}") from exc
    if y.ndim not in (1, 2):
        raise ValueError(f"y must be of shape (n_samples,) or (n_samples, n_targets); got shape {y.shape}.")
    if y.ndim == 2 and y.shape[1] == 0:
        raise ValueError(f"y has no targets (shape {y.shape}); it needs at least one column.")
    if y.dtype.kind in "US":
        raise ValueError(f"y must hold numbers; got strings (dtype {y.dtype}). ESPRORegressor predicts numbers; "
                         "for class labels, use ESPROClassifier.")
    if y.dtype.kind == "c":
        raise ValueError(f"Complex data not supported: y must hold real numbers; got dtype {y.dtype}.")
    if y.dtype.kind == "O":
        for index, value in np.ndenumerate(y):
            _check_target(value, index if y.ndim == 2 else index[0])
    elif y.dtype.kind not in "biuf":
        raise ValueError(f"y must hold numbers; got dtype {y.dtype}.")


def _check_target(value, index) -> None:
    """One element of an object array of targets: a real number."""
    if value is None:
        raise ValueError(f"y holds None (a missing target) at index {index}; drop or impute those samples.")
    if isinstance(value, (str, bytes, complex, np.complexfloating)):  # float() would read "1.5", or drop 1j
        raise ValueError(f"y must hold real numbers; got a {type(value).__name__} ({value!r}) at index {index}.")
    try:
        float(value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ValueError(f"y must hold numbers; got a {type(value).__name__} at index {index}: {exc}") from exc


def _check_finite(values: np.ndarray, message: str) -> None:
    """A ValueError with ``message`` and the index of the first NaN or infinite value, if there is one."""
    bad = np.argwhere(~np.isfinite(values))
    if len(bad):
        index = tuple(int(i) for i in bad[0])
        raise ValueError(f"{message} (at index {index if values.ndim == 2 else index[0]}).")
