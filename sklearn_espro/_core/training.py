"""Training a simplex: one vertex at a time on the regularised loss (Eq. 1 and 3).

Plain functions, no scikit-learn. The objective is :func:`regularized_loss`; the loop is
the small verbs :func:`infer`, :func:`get_loss`, :func:`train_step` and :func:`run_epoch` on
the state of :func:`~sklearn_espro._core.vertex_state.init_vertex_state` (re-exported
here), driven by :mod:`sklearn_espro._core.growing`.
"""

from __future__ import annotations


import torch
from torch import Tensor
from torch.func import functional_call

from .batchnorm import batch_sizes
from .rows import StreamedRows, load_batches
from ..geometry import log_volume_with_vertex, sample_complex_coords
from .simplex import Params, batched_forward, unflatten
from .vertex_state import VertexState, init_vertex_state

__all__ = ["get_loss", "infer", "init_vertex_state", "regularized_loss", "run_epoch", "train_step"]



def log_volumes(state: VertexState) -> Tensor:
    """Log-volume of each simplex that the trainable vertex belongs to: (n_simplexes,) float64."""
    return torch.stack([log_volume_with_vertex(state.vertex, *hull) for hull in state.hulls])


def log_total_volume(state: VertexState) -> Tensor:
    """``log V(K)``: the log of the summed volumes of the simplexes that the trainable vertex belongs to.

    Eq. 1 for a complex regularises the log of its total volume, which weighs each simplex
    by its size (``logsumexp`` of the log-volumes); for one simplex, its log-volume.
    """
    return log_volumes(state).logsumexp(0)


def sample_params(state: VertexState, n_models: int) -> Params:
    """Weights of ``n_models`` points drawn uniformly from the simplexes being grown.

    A simplex is picked with probability proportional to its volume (there is one when
    a single simplex grows), then a uniform point in it: ``theta = C_frozen @ A_frozen +
    c_new * a_new``, one matrix product whose gradient reaches only the new vertex.
    """
    n_frozen = state.frozen.shape[0]
    with torch.no_grad():
        volumes = log_volumes(state) if len(state.faces) > 1 else state.frozen.new_zeros(1)
    coords = sample_complex_coords(state.simplexes, volumes, n_models, n_frozen + 1,
                                   generator=state.generator, dtype=state.frozen.dtype)
    if n_models == 1:
        views = _OneModel.apply(state.vertex, state.stack, coords[0], state.weights, state.like)
        return {name: view[None] for name, view in zip(state.like, views)}
    flat = torch.addmm(coords[:, n_frozen:] * state.vertex, coords[:, :n_frozen], state.frozen)
    return unflatten(flat, state.like)


class _OneModel(torch.autograd.Function):
    """The weights of one point of the simplex, ``coords @ stack``, as one view per parameter.

    One matrix-vector product into the reused ``state.weights``; the backward gathers the
    parameters' gradients once and scales them in place by the trainable vertex's
    coordinate. Autograd's own combine made two more passes over the parameters (a
    ResNet-18 step on a CPU, ``speed.py --steps``: 1.32x a plain step against 1.15x).
    """

    @staticmethod
    def forward(ctx, vertex: Tensor, stack: Tensor, coords: Tensor, weights: Tensor, like: Params):
        # vertex is read through stack (they share storage); it is an input for its gradient
        ctx.save_for_backward(coords)
        ctx.shapes = [v.shape[1:] for v in like.values()]
        torch.mv(stack.T, coords, out=weights)
        return tuple(unflatten(weights, like, n_leading=1).values())

    @staticmethod
    def backward(ctx, *grads: Tensor | None):
        (coords,) = ctx.saved_tensors
        parts = [g.reshape(-1) if g is not None else coords.new_zeros(shape.numel())  # an unused parameter
                 for g, shape in zip(grads, ctx.shapes)]
        return torch.cat(parts).mul_(coords[-1]), None, None, None, None


def infer(state: VertexState, x_chunks: Tensor) -> Tensor:
    """Logits of one sampled model per chunk: (n_chunks, chunk, ...) -> (n_chunks, chunk, n_classes).

    Several chunks run as one vectorised forward (``torch.func.vmap``), so a step with
    H samples costs one forward of the minibatch, not H; a single chunk runs as a plain
    forward of one sampled model, the cheapest step on every device measured.

    Parameters
    ----------
    state : VertexState
    x_chunks : Tensor of shape (n_chunks, chunk, ...)

    Returns
    -------
    Tensor of shape (n_chunks, chunk, n_classes)

    Examples
    --------
    >>> import torch
    >>> from sklearn_espro import Simplex
    >>> state = init_vertex_state(
    ...     Simplex.from_module(torch.nn.Linear(4, 3)), volume_reg=0.1, lr=0.01, n_train_samples=2,
    ...     optimizer=torch.optim.SGD, optimizer_kwargs={}, criterion=torch.nn.CrossEntropyLoss(),
    ...     generator=torch.Generator().manual_seed(0))
    >>> infer(state, torch.randn(2, 5, 4)).shape  # 2 sampled models, 5 inputs each
    torch.Size([2, 5, 3])
    """
    return forward_sampled(state, sample_params(state, x_chunks.shape[0]), x_chunks)


def forward_sampled(state: VertexState, params: Params, x_chunks: Tensor) -> Tensor:
    """:func:`infer`'s forward of given sampled weights ``(n_chunks, ...)``, one setting per chunk."""
    if x_chunks.shape[0] == 1:  # one model: a plain forward, without vmap's batched kernels
        one = {name: p[0] for name, p in params.items()}
        return functional_call(state.module, (one, state.buffers), (x_chunks[0],))[None]
    return batched_forward(
        state.module, params, state.buffers, x_chunks, x_batched=True, buffers_batched=False
    )


def regularized_loss(data_loss: Tensor, log_volume: Tensor, volume_reg: float) -> Tensor:
    """The SPRO objective (Eq. 1 and Eq. 3 of Benton et al. 2021).

    ``L_reg = (1/H) sum_h L(D; theta_h) - lambda * log V(S)`` with ``theta_h ~ U(S)``.

    Parameters
    ----------
    data_loss : Tensor of shape ()
        The mean of the H sampled models' losses (a mean, not the sum the reference
        code returns by mistake).
    log_volume : Tensor of shape ()
        ``log V(S)`` of the simplex with its trainable vertex; for a complex, the log of
        the total volume of its simplexes, ``log sum_s V(S_s)``, as Eq. 1 has it.
    volume_reg : float
        ``lambda`` of Eq. 1. ``0`` drops the term, so that a vertex on the hull of the
        others (``log V = -inf``, e.g. a start without noise) costs nothing.

    Returns
    -------
    Tensor of shape ()

    Examples
    --------
    >>> import torch
    >>> regularized_loss(torch.tensor(0.5), torch.tensor(2.0, dtype=torch.float64), 0.1)
    tensor(0.3000)
    """
    if volume_reg == 0:  # the term is dropped, also at log V = -inf (where 0 * log V is NaN)
        return data_loss
    return data_loss - volume_reg * log_volume.to(data_loss.dtype)


def get_loss(state: VertexState, logits: Tensor, y_chunks: Tensor) -> tuple[Tensor, Tensor]:
    """Regularised loss of one step (Eq. 1) and its data loss.

    The data loss is the criterion over all chunks at once: with equal chunks, the
    mean over the H sampled models of each model's mean loss on its chunk. The log of
    the total volume of the simplexes the vertex belongs to (:func:`log_total_volume`)
    enters through :func:`regularized_loss`; with ``volume_reg=0`` it is not computed.

    Parameters
    ----------
    state : VertexState
    logits : Tensor of shape (n_chunks, chunk, n_classes)
    y_chunks : Tensor of shape (n_chunks, chunk)

    Returns
    -------
    loss, data_loss : Tensor of shape ()

    Examples
    --------
    >>> import torch
    >>> from sklearn_espro import Simplex
    >>> state = init_vertex_state(
    ...     Simplex.from_module(torch.nn.Linear(4, 3)), volume_reg=0.1, lr=0.01, n_train_samples=2,
    ...     optimizer=torch.optim.SGD, optimizer_kwargs={}, criterion=torch.nn.CrossEntropyLoss(),
    ...     generator=torch.Generator().manual_seed(0))
    >>> loss, data_loss = get_loss(state, infer(state, torch.randn(2, 5, 4)), torch.zeros(2, 5, dtype=torch.long))
    >>> bool(torch.isclose(data_loss - loss, 0.1 * log_total_volume(state).float()))  # lambda * log V
    True
    """
    data_loss = state.criterion(logits.flatten(0, 1), y_chunks.flatten(0, 1))
    if state.volume_reg == 0:
        return data_loss, data_loss
    return regularized_loss(data_loss, log_total_volume(state), state.volume_reg), data_loss


def chunks(state: VertexState, xb: Tensor, yb: Tensor) -> tuple[Tensor, Tensor]:
    """A minibatch as ``n_train_samples`` equal chunks, one per sampled model: (n_chunks, chunk, ...).

    A short batch gets fewer chunks, never chunks smaller than ``state.min_chunk``; up to
    ``n_chunks - 1`` trailing samples that the number of chunks does not divide are left out.
    """
    n_chunks = max(min(state.n_train_samples, len(xb) // state.min_chunk), 1)
    size = len(xb) // n_chunks
    return xb[: n_chunks * size].unflatten(0, (n_chunks, size)), yb[: n_chunks * size].unflatten(0, (n_chunks, size))


def train_step(state: VertexState, xb: Tensor, yb: Tensor) -> tuple[Tensor, Tensor]:
    """One optimizer step on a minibatch split into ``n_train_samples`` chunks.

    The vertex's gradient is clipped to ``state.max_grad_norm`` first, when one is set.
    Each chunk is seen by its own model sampled from the simplex. A short batch gets
    fewer chunks, never chunks smaller than ``state.min_chunk`` (2 with BatchNorm, which
    cannot normalise one sample). Up to H - 1 trailing samples of a batch that the number
    of chunks does not divide are left out of this step.

    Parameters
    ----------
    state : VertexState
    xb : Tensor of shape (batch, ...)
    yb : Tensor of shape (batch,)

    Returns
    -------
    loss, data_loss : Tensor of shape ()
        Detached, on the training device (no host synchronisation).

    Examples
    --------
    >>> import torch
    >>> from sklearn_espro import Simplex
    >>> state = init_vertex_state(
    ...     Simplex.from_module(torch.nn.Linear(4, 3)), volume_reg=0.1, lr=0.01, n_train_samples=2,
    ...     optimizer=torch.optim.SGD, optimizer_kwargs={}, criterion=torch.nn.CrossEntropyLoss(),
    ...     generator=torch.Generator().manual_seed(0))
    >>> before = state.vertex.detach().clone()
    >>> loss, data_loss = train_step(state, torch.randn(10, 4), torch.randint(3, (10,)))
    >>> bool((state.vertex != before).any())  # only the new vertex moved
    True
    """
    x_chunks, y_chunks = chunks(state, xb, yb)
    state.optimizer.zero_grad(set_to_none=True)
    if state.diversity:
        loss, data_loss = _loss_with_disagreement(state, x_chunks, y_chunks)
    else:
        loss, data_loss = get_loss(state, infer(state, x_chunks), y_chunks)
    loss.backward()
    if state.max_grad_norm is not None:
        torch.nn.utils.clip_grad_norm_([state.vertex], state.max_grad_norm)
    state.optimizer.step()
    return loss.detach(), data_loss.detach()


def _loss_with_disagreement(state: VertexState, x_chunks: Tensor, y_chunks: Tensor) -> tuple[Tensor, Tensor]:
    """Eq. 1's loss plus ``state.diversity`` times the sampled models' agreement with the mode off the training set.

    Experimental (not an estimator parameter; ``benchmarks/budget.py``'s ``div*`` settings
    measure it). Off the training set means mixup of the minibatch with itself shuffled
    (``x' = a x_i + (1 - a) x_j``, ``a ~ U(0, 1)``), where the mode's answer is a guess, or
    with ``state.off_inputs == "noise"`` the rows plus Gaussian noise of their standard deviation. The
    term is D-BAT's (Pagliardini et al., 2023) for two models: ``-log(1 - sum_c p_c q_c)``,
    ``p`` the sampled model's probabilities at ``x'``, ``q`` the mode's; it is small when
    they put their mass on different classes. Each sampled model sees its chunk, then that
    chunk's mixed-up copy in a forward of its own (so that BatchNorm normalises the training
    rows by their own statistics, as it will at prediction).
    """
    n_chunks, size = x_chunks.shape[:2]
    flat = x_chunks.flatten(0, 1)
    if state.off_inputs == "noise":  # Gaussian noise of the rows' own scale
        noise = torch.randn(flat.shape, generator=state.generator, device=state.generator.device).to(flat)
        off = (flat + noise * flat.std()).unflatten(0, (n_chunks, size))
    else:
        mix = torch.rand(len(flat), generator=state.generator, device=state.generator.device).to(flat)
        perm = torch.randperm(len(flat), generator=state.generator, device=state.generator.device).to(flat.device)
        shape = (-1,) + (1,) * (flat.dim() - 1)
        off = (mix.view(shape) * flat + (1 - mix.view(shape)) * flat[perm]).unflatten(0, (n_chunks, size))
    params = sample_params(state, n_chunks)
    loss, data_loss = get_loss(state, forward_sampled(state, params, x_chunks), y_chunks)
    off_logits = forward_sampled(state, params, off)  # the same models, a forward of their own (BatchNorm)
    with torch.no_grad():
        mode = {name: p[0] for name, p in unflatten(state.frozen[:1], state.like).items()}
        q = functional_call(state.module, (mode, state.buffers), (off.flatten(0, 1),)).softmax(-1)
    agree = (off_logits.flatten(0, 1).softmax(-1) * q).sum(-1)
    return loss + state.diversity * -torch.log1p(-agree.clamp(max=1 - 1e-6)).mean(), data_loss


def run_epoch(state: VertexState, X: Tensor | StreamedRows, y: Tensor, batch_size: int) -> dict[str, float]:
    """One pass over shuffled ``X`` in minibatches (each through ``state.augment``, if set); returns the epoch's losses.

    A last batch too short for one chunk (one sample, with BatchNorm) joins the one before.

    Parameters
    ----------
    state : VertexState
    X : Tensor of shape (n_samples, ...), or StreamedRows
        On the training device, or rows read a batch at a time and moved there.
    y : Tensor of shape (n_samples,)
        On the training device.
    batch_size : int

    Returns
    -------
    dict of str to float
        ``loss`` (mean regularised loss), ``data_loss`` (mean loss of the sampled models),
        ``start_data_loss`` (that of the first step, before any update) and
        ``log_volume`` (the log of the total volume of the simplexes the vertex belongs
        to, after the epoch); read from the device once, at the end.

    Examples
    --------
    >>> import torch
    >>> from sklearn_espro import Simplex
    >>> state = init_vertex_state(
    ...     Simplex.from_module(torch.nn.Linear(4, 3)), volume_reg=0.1, lr=0.01, n_train_samples=2,
    ...     optimizer=torch.optim.SGD, optimizer_kwargs={}, criterion=torch.nn.CrossEntropyLoss(),
    ...     generator=torch.Generator().manual_seed(0))
    >>> sorted(run_epoch(state, torch.randn(20, 4), torch.randint(3, (20,)), batch_size=10))
    ['data_loss', 'log_volume', 'loss', 'start_data_loss']
    """
    order = torch.randperm(len(X), generator=state.generator, device=state.generator.device)
    sums = torch.zeros(2, device=y.device, dtype=torch.float64)  # regularised loss, data loss
    batches = order.split(batch_sizes(len(X), batch_size, state.min_chunk))
    for i, (idx, xb) in enumerate(zip(batches, load_batches(X, batches, y.device))):
        xb = xb if state.augment is None else state.augment(xb)
        losses = torch.stack(train_step(state, xb, y[idx]))
        sums += losses
        if i == 0:  # the data loss (Eq. 1 without its volume term) at the start point
            start = losses[1]
    with torch.no_grad():
        log_volume = log_total_volume(state)
    values = torch.cat([sums / len(batches), start[None].to(sums.dtype), log_volume[None].to(sums.dtype)]).tolist()
    return dict(zip(("loss", "data_loss", "start_data_loss", "log_volume"), values))
