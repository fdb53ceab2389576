"""ESPROClassifier: the scikit-learn face of simplex ensembles for classification.

The shared contract (parameters, ``fit``, the fitted members) is :class:`~sklearn_espro._base.ESPROBase`'s;
this class says what classes are and averages the members' probabilities (Eq. 5).
"""

from __future__ import annotations

from contextlib import nullcontext
from functools import partial

import numpy as np
import torch
from sklearn.base import ClassifierMixin
from sklearn.utils.validation import validate_data
from torch import nn

from ._base import ESPROBase, Targets
from ._core.global_state import own_global_rng
from ._core.prediction import mean_probabilities
from ._core.rows import StreamedRows, as_rows
from ._core.validation import StrOptions, check_criterion, check_module, check_X_y, resolve_device
from ._modules import MLP
from ._starts import encode_labels, weighted_criterion_kwargs

__all__ = ["ESPROClassifier"]


class ESPROClassifier(ClassifierMixin, ESPROBase):
    """Simplex ensemble (ESPRO) of any torch module, as a scikit-learn classifier.

    Trains ``n_modes`` networks independently; around each grows a simplex of
    ``n_vertices`` low-loss weight vectors, one vertex at a time, minimising the mean
    loss of ``n_train_samples`` models drawn uniformly in the simplex minus
    ``lambda * log(volume)`` (Eq. 1/3); predicts by averaging the class probabilities
    of ``n_samples`` models drawn from each simplex (Eq. 5).

    Parameters
    ----------
    module : nn.Module subclass or instance, default=MLP
        Maps a float32 batch of ``X`` to logits. A class is built with the
        ``module__*`` arguments; ``n_features_in`` and ``n_classes`` are filled from
        the data when its constructor takes them and they are not given. An instance
        is copied and re-initialised for each mode. Parameters with
        ``requires_grad=False`` stay as initialised: shared by every vertex, outside
        the volume; tied parameters stay tied.
    n_modes : int, default=3
        Number of independently trained networks, one simplex each (``J``).
    n_vertices : int, default=4
        Vertices of each simplex, the mode included. ``1`` is a plain deep ensemble.
    volume_reg : float, default=0.0
        ``lambda`` of Eq. 1, the same for every vertex: the volume term pulls the new
        vertex from the others' hull with force ``lambda / h`` (``h`` its distance to
        it) whatever the vertex count. ``0`` (best on validation data, see the user
        guide) grows simplexes from the loss alone.
    n_train_samples : int, default=1
        Models drawn per training step (``H`` of Eq. 3). ``1``: one model drawn anew for
        each minibatch, a plain forward (1.0-1.2x a plain step; ``H=5`` 1.2-4.0x on a
        CPU), the same NLL on validation data. ``H > 1`` splits the minibatch into ``H``
        chunks, one model each, in one vectorised forward.
    n_samples : int, default=5
        Models drawn from each simplex for prediction (``M`` of Eq. 5); fixed at fit.
    max_epochs : int, default=30
        Epochs of each mode (cosine learning-rate schedule).
    vertex_epochs : int, default=3
        Epochs of each added vertex; a simplex costs ``(n_vertices - 1) *
        vertex_epochs`` epochs beyond its mode (9 of 30 by default).
    lr : float, default=0.2
        Learning rate of the modes, chosen with ``batch_size=64`` on validation splits
        of MNIST-1D and digits (docs/results.md). High for SGD: on large unscaled input it
        can leave a ReLU network dead, which ``fit`` reports with a warning.
    vertex_lr : float, default=0.05
        Learning rate of the vertices, restarted for each: high enough that each vertex
        leaves the mode (a low rate grows copies of it), low enough that members keep
        fitting. Chosen on validation data with 3 modes.
    vertex_schedule : {"cosine", "constant"}, default="cosine"
        The vertices' learning rate over their epochs: a cosine from ``vertex_lr`` to
        zero, restarted for each vertex, or ``vertex_lr`` throughout.
    batch_size : int, default=64
        Minibatch size of training. With BatchNorm, a last batch of one sample is left
        out of a mode's epoch and joins the batch before it in a vertex's epoch.
    max_grad_norm : float or None, default=10.0
        Every training step (modes and vertices) first clips its gradient to this
        norm. On scaled data the gradients stay below it nearly always (largest norms
        seen: 9.3 on digits, 3.8 on MNIST-1D), so it leaves those fits as they were; on
        unscaled inputs (features around 100) it keeps SGD at ``lr=0.2`` from diverging
        to NaN, though the network may still end dead (a warning says so): scale the
        features, or clip harder (3 trained such data well, docs/results.md, "Gradient
        clipping"). ``None`` never clips.
    augment : callable or None, default=None
        Applied to the inputs of every training minibatch of the modes and the vertices,
        on the training device: a batch tensor in, one of the same shape out (e.g.
        :class:`~sklearn_espro.augment.SeriesAugmentation`,
        :class:`~sklearn_espro.augment.ImageAugmentation`, a plain function or a
        ``torchvision.transforms.v2`` object). Its randomness comes from torch's global
        generator, seeded from ``random_state`` during ``fit`` and restored after. Never
        applied at prediction, nor to the data of the BatchNorm statistics.
    predict_batch_size : int, default=1024
        Samples per forward pass in ``predict_proba``, and when a mode's held-out rows
        (``validation_fraction``) are scored; memory grows with it times
        ``n_samples``. (BatchNorm statistics are recomputed over batches of
        ``batch_size``, in ``fit`` and in ``sample_models`` alike.)
    batchnorm_rows : int or None, default=2048
        With BatchNorm layers: the training rows, drawn at random once per simplex
        (seeded from ``random_state``), on which the statistics of each model kept for
        prediction are recomputed at the end of ``fit``; ``sample_models(X=...)`` draws
        as many from its ``X``. ``None``, or no fewer than the rows there are, uses every
        row. At least 2. The bound keeps that step's cost fixed whatever the size of the
        data: for 8 models of the MNIST-1D CNN, 0.11 plain epochs at 40,000 rows (2.2
        with every row). 2048 left validation accuracy and NLL unchanged on MNIST-1D
        (3,200 and 32,000 training rows), where 1024 and fewer moved them on the smaller
        set (docs/results.md).
    optimizer : torch.optim.Optimizer subclass, default=torch.optim.SGD
        Used for modes and vertices with ``optimizer__*`` arguments (not ``lr``: see
        ``lr`` and ``vertex_lr``); for SGD, ``optimizer__momentum`` defaults to 0.9
        and ``optimizer__weight_decay`` to 5e-4 (the paper's recipe).
        It must not need a closure in ``step`` (LBFGS does).
    criterion : nn.Module subclass, default=nn.CrossEntropyLoss
        Built with the ``criterion__*`` arguments; takes logits and class indices and
        returns the mean loss (``reduction="none"`` is refused).
    class_weight : dict, "balanced" or None, default=None
        Weights of the classes in the loss, as in scikit-learn: ``{label: weight}`` or
        ``"balanced"`` (``n_samples / (n_classes * counts)``); passed to the criterion
        as ``weight`` (``nn.CrossEntropyLoss`` takes it).
    callbacks : list of skorch callbacks, default=None
        Added to the skorch net that trains each mode (``ProgressBar``,
        ``EarlyStopping``, ...); each mode gets a copy, and one that stops training
        ends only that mode's. A callback may monitor what a mode's history records:
        ``"train_loss"``, and with ``validation_fraction`` ``"valid_loss"`` and
        ``"valid_acc"`` (each also as ``"*_best"``); so ``EarlyStopping()``, which
        monitors ``"valid_loss"``, needs ``validation_fraction`` (without it, use
        ``EarlyStopping(monitor="train_loss")``); other monitors are refused at ``fit``.
        A ``skorch.callbacks.LRScheduler`` among them replaces the modes' cosine
        schedule. Names starting with ``"espro_"`` are ESPRO's own.
    validation_fraction : float in (0, 1) or None, default=None
        Fraction of the rows held out, stratified by class (``train_test_split`` with
        ``stratify=y``: ``ceil(validation_fraction * n_samples)`` rows; every class needs
        two rows). Drawn once per call to ``fit`` from ``random_state``; no mode or
        vertex trains on them and BatchNorm statistics are recomputed without them.
        skorch scores each mode on them after every epoch (``valid_loss`` and
        ``valid_acc`` in ``history_``), which callbacks such as ``EarlyStopping()`` can
        monitor. Unlike ``MLPClassifier``'s, it holds rows out whether or not anything
        stops early. ``classes_`` and ``class_weight="balanced"`` come from all of ``y``.
        With ``warm_start``, each call draws its own split: rows held out now may have
        trained the members fitted before. ``None``: every row trains.
    device : {"auto", "cpu", "cuda", ...}, default="auto"
        ``"auto"``: CUDA when available, else the CPU.
    n_jobs : int, default=None
        Simplexes trained in parallel by ``joblib`` (the backend is chosen outside
        with ``joblib.parallel_config``); not 0, as in joblib.
    random_state : int, RandomState instance or None, default=None
    verbose : int, default=0
        ``1`` shows a progress bar per simplex with its loss and log-volume.
    modes : list of (nn.Module, state dict or fitted skorch net), default=None
        Pretrained starting points; then no mode is trained, ``n_modes`` is ignored and
        only the simplexes grow (an existing deep ensemble turned into ESPRO).
    warm_start : bool, default=False
        When fitted already, ``fit`` keeps the fitted members and adds only what is
        missing, as scikit-learn's forests do: a larger ``n_vertices`` grows the missing
        vertices of each simplex from its fitted ones (and draws its prediction models
        anew), a larger ``n_modes`` (or a longer ``modes`` list) trains only the new
        members; the same parameters train nothing. X must have samples of the fitted
        shape and y the fitted classes; fewer modes or vertices are refused, and a
        ``modes`` list may only gain networks at its end. Other parameters (``n_samples``,
        ``module__*``, rates) apply to what this fit trains, not to fitted members.
    **kwargs
        ``module__*``, ``optimizer__*`` and ``criterion__*`` arguments, as in skorch; and
        for data read a batch at a time (a ``Dataset`` or memmap ``X``), ``DataLoader``
        arguments: ``iterator_train__*`` for the training batches, ``iterator_valid__*``
        for batches in order (held-out rows, BatchNorm statistics, prediction), e.g.
        ``iterator_train__num_workers=4, iterator_train__pin_memory=True``. Only
        ``num_workers``, ``pin_memory``, ``prefetch_factor``, ``timeout``,
        ``worker_init_fn``, ``multiprocessing_context`` and ``pin_memory_device``: the
        batches, their order and their collation are ESPRO's, so that the rows train the
        same model however they arrive. Each pass over the data builds its own loader,
        whose workers are seeded from ``random_state`` and the pass.
        In-memory arrays ignore them (they are indexed on the device directly).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    n_features_in_ : int
    members_ : list of Member
        One per mode, on the CPU: its simplex, the ``n_samples`` models of it that
        ``predict_proba`` averages (coordinates and buffers, BatchNorm statistics
        recomputed on ``batchnorm_rows`` training rows) and the history of its epochs.
    simplexes_ : list of Simplex
        The members' simplexes; vertex 0 of each is its mode (``vertex_module(0)``).
    log_volumes_ : ndarray of shape (n_simplexes,)
        Natural log of each simplex's volume (0 for a single vertex).
    history_ : list of dict
        One record per epoch: ``simplex``, ``fit`` (the call to ``fit`` that trained it:
        0, then 1, 2, ... with ``warm_start``), ``phase`` ("mode" or "vertex"), ``vertex``,
        ``epoch``, ``loss``; for modes with ``validation_fraction``, ``valid_loss`` and
        ``valid_acc`` (of the held-out rows, from skorch's history); for vertices,
        ``data_loss`` (the sampled models' mean loss, without the volume term) and
        ``log_volume``.

    Notes
    -----
    ``X`` may be larger than memory: a numpy memmap (read by position from its file, a
    minibatch at a time, never copied whole), or a map-style torch ``Dataset`` whose items
    are inputs (with ``y``) or ``(input, target)`` pairs (``y=None``: the targets are read
    in one pass at the start of ``fit``), as skorch takes them. Both train the same model
    as the array in memory (same ``random_state``, on the CPU), stream a ``DataLoader``'s
    batches to the device (``iterator_train__*``), and so do ``predict_proba``,
    ``predict`` and ``sample_models(X=...)``. A memmap's values are checked for NaN in
    chunks before training; a dataset's as its batches are read.

    Every parameter and the module, optimizer, criterion and callbacks are checked
    before any training starts. A fit never ends with non-finite vertices, log-volumes
    or probabilities: it raises ``FloatingPointError`` naming the phase instead, and
    warns (``RuntimeWarning``) when a vertex's loss grew a hundredfold while it trained, or
    when a mode's training loss ended no better than predicting the class frequencies
    (cross-entropy without criterion arguments).
    ``fit`` leaves torch's global random state as it found it (modes draw dropout from
    a private copy seeded from ``random_state``), and never writes into ``X``.

    A failing ``fit`` (bad input, a loss that becomes NaN, ``KeyboardInterrupt``) leaves
    the estimator exactly as it was before the call; with ``n_jobs > 1`` joblib stops its
    workers. No partial fit is kept: the simplexes are independent, so refitting is the
    way to resume. ``sample_weight`` is not accepted.

    Cost (docs/results.md): a vertex epoch is 0.9-1.2 plain PyTorch epochs of a CNN on a
    CPU (1.12-1.30 for ResNet-18); prediction 1.0-1.1x the ``n_modes * n_samples``
    models' plain forwards; with BatchNorm, ``n_samples`` forward passes over at most
    ``batchnorm_rows`` rows per simplex (0.1 plain epochs from 40,000 rows on).

    References
    ----------
    G. Benton, W. Maddox, S. Lotfi, A. G. Wilson. Loss Surface Simplexes for Mode
    Connecting Volumes and Fast Ensembling. ICML 2021.

    Examples
    --------
    >>> from sklearn.datasets import make_classification
    >>> from sklearn_espro import ESPROClassifier
    >>> X, y = make_classification(n_samples=60, n_features=5, random_state=0)
    >>> clf = ESPROClassifier(n_modes=2, n_vertices=2, max_epochs=2, vertex_epochs=1,
    ...                       module__hidden_sizes=(8,), random_state=0).fit(X, y)
    >>> clf.predict_proba(X[:2]).sum(axis=1).round(6)
    array([1., 1.])
    """

    _parameter_constraints: dict = {
        **ESPROBase._parameter_constraints,
        "class_weight": [dict, StrOptions({"balanced"}), None],
    }

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
        lr=0.2,
        vertex_lr=0.05,
        vertex_schedule="cosine",
        batch_size=64,
        max_grad_norm=10.0,
        augment=None,
        predict_batch_size=1024,
        batchnorm_rows=2048,
        optimizer=torch.optim.SGD,
        criterion=nn.CrossEntropyLoss,
        class_weight=None,
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
        self.class_weight = class_weight
        self.callbacks = callbacks
        self.validation_fraction = validation_fraction
        self.device = device
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.verbose = verbose
        self.modes = modes
        self.warm_start = warm_start
        self._kwargs = dict(kwargs)  # routed arguments; checked in fit

    # -- what ESPROBase.fit asks of a classifier ------------------------------------------
    def _validate_fit_data(self, X, y):
        return check_X_y(partial(validate_data, self), X, y, allow_nd=True, dtype=np.float32, ensure_min_samples=2)

    def _targets(self, y) -> Targets:
        classes, y_idx = encode_labels(y)
        criterion_kwargs = weighted_criterion_kwargs(self._routed("criterion__"), self.class_weight, classes, y)
        return Targets(y_idx, len(classes), len(classes), criterion_kwargs, {"classes_": classes})

    def _check_criterion(self, targets: Targets) -> None:
        check_criterion(self.criterion, targets.criterion_kwargs, targets.n_classes)

    def _check_module(self, module: nn.Module, X: np.ndarray, targets: Targets) -> None:
        check_module(module, X, targets.n_classes, self.n_vertices, self.batch_size)

    def _check_warm_targets(self, targets: Targets) -> None:
        classes = targets.attributes["classes_"]
        if len(classes) != len(self.classes_) or (classes != self.classes_).any():
            raise ValueError(f"y has the classes {classes.tolist()}, but the fitted members were trained on "
                             f"{self.classes_.tolist()}; warm_start=True needs the same classes.")

    # -- prediction -------------------------------------------------------------------
    @torch.no_grad()
    def predict_proba(self, X):
        """Mean class probabilities of the models sampled from every simplex (Eq. 5).

        Parameters
        ----------
        X : array-like of shape (n_samples, ...), numpy memmap or torch Dataset
            A memmap or dataset is read ``predict_batch_size`` rows at a time.

        Returns
        -------
        ndarray of shape (n_samples, n_classes), float64
            Rows sum to one.

        Raises
        ------
        FloatingPointError
            When the module returns NaN or infinite logits for some rows of ``X``.
        """
        X = self._validate_X(X)
        device = resolve_device(self.device, fallback=True)
        streamed = own_global_rng(device) if isinstance(X, StreamedRows) else nullcontext()
        with streamed:  # a dataset's transforms may draw from torch's global generator
            proba = mean_probabilities(self.members_, as_rows(X), self.predict_batch_size, device).numpy()
        bad = np.flatnonzero(~np.isfinite(proba).all(axis=1))
        if len(bad):
            raise FloatingPointError(
                f"The module returned non-finite logits for {len(bad)} of {len(X)} rows of X (the first is "
                f"row {bad[0]}): their probabilities are undefined."
            )
        return proba

    def predict_log_proba(self, X):
        """Natural log of :meth:`predict_proba`.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            ``-inf`` where a probability is exactly zero.
        """
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X):
        """Class labels of the highest mean probability.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        proba = self.predict_proba(X)
        return self.classes_[proba.argmax(axis=1)]
