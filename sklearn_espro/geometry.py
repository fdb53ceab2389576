"""Pure tensor geometry of simplexes: volumes, sampling, and the affine hull.

Every function here is a typed function of tensors with no state and no training.
A simplex with vertices ``a_0, ..., a_k`` in ``R^P`` is given as a tensor of shape
``(n_vertices, n_params)`` with ``n_vertices = k + 1``; leading batch dimensions are
allowed wherever a docstring says ``(..., n_vertices, n_params)``.

The volume formula lives in :func:`log_simplex_volume` (from the singular values of the
edges, used everywhere) and :func:`cayley_menger_volume` (Appendix A.1 of Benton et al.
2021, kept as the reference it is tested against). Uniform points of a simplex or a
complex and the plane of three points live in ``sklearn_espro/_points.py`` and are
re-exported here.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ._points import plane_basis, sample_barycentric, sample_complex_coords

__all__ = [
    "cayley_menger_volume",
    "sample_complex_coords",
    "plane_basis",
    "hull_basis",
    "log_simplex_volume",
    "log_volume_with_vertex",
    "sample_barycentric",
    "simplex_volume",
]


_EPS64 = torch.finfo(torch.float64).eps


def _check_vertices(vertices: Tensor, name: str = "vertices") -> None:
    """Raise unless ``vertices`` is a tensor of shape (..., n_vertices >= 1, n_params)."""
    if not isinstance(vertices, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (..., n_vertices, n_params); got {type(vertices).__name__}.")
    if vertices.ndim < 2 or vertices.shape[-2] < 1:
        raise ValueError(f"{name} must have shape (..., n_vertices, n_params) with at least one vertex; "
                         f"got shape {tuple(vertices.shape)}.")


def _input_eps(tensor: Tensor) -> float:
    """Machine epsilon of the dtype ``tensor`` came in (float64's for integers)."""
    return torch.finfo(tensor.dtype).eps if tensor.is_floating_point() else _EPS64


def _power_of_two_scale(x: Tensor, dim: int | tuple[int, ...]) -> Tensor:
    """A power of two ``c`` with ``c <= max |x| < 2 c`` over ``dim`` (kept), detached.

    Dividing by it is exact and brings the largest entry into [1, 2): squares and
    determinants of the result neither overflow nor underflow. ``c = 1`` where ``x`` is
    all zero or not finite.
    """
    peak = x.detach().abs().amax(dim=dim, keepdim=True)
    usable = torch.isfinite(peak) & (peak > 0)
    _, exponent = torch.frexp(torch.where(usable, peak, torch.ones_like(peak)))
    return torch.ldexp(torch.ones_like(peak), exponent - 1)


def _edges(vertices: Tensor) -> Tensor:
    """Edge vectors ``a_i - a_0`` in float64, shape (..., n_params, n_vertices - 1)."""
    vertices = vertices.to(torch.float64)
    return (vertices[..., 1:, :] - vertices[..., :1, :]).transpose(-1, -2)


def _flatness_tolerance(points: Tensor, lengths: Tensor, eps: float) -> Tensor:
    """Smallest singular value of the unit edge matrix that is more than rounding.

    Rounding each coordinate of ``a_j`` and ``a_0`` to a relative ``eps`` moves the unit
    edge ``(a_j - a_0) / |a_j - a_0|`` by at most ``eps (|a_j| + |a_0|) / |a_j - a_0|``;
    the singular values move by at most the norm of all such moves, below
    ``2 k (eps max_j (|a_j| + |a_0|) / |a_j - a_0| + eps_64)`` (the last term for the
    float64 arithmetic).

    Parameters
    ----------
    points : Tensor of shape (..., n_vertices, n_params), float64
    lengths : Tensor of shape (..., 1, n_vertices - 1)
        ``|a_j - a_0|``, in the units of ``points``.
    eps : float
        Machine epsilon of the dtype the vertices came in.

    Returns
    -------
    Tensor of shape (...)
    """
    norms = torch.linalg.vector_norm(points.detach(), dim=-1)  # (..., n_vertices)
    reach = (norms[..., 1:] + norms[..., :1]) / lengths.squeeze(-2)
    k = lengths.shape[-1]
    return 2 * k * (eps * reach.amax(-1) + _EPS64)


def log_simplex_volume(vertices: Tensor) -> Tensor:
    """Log of the k-dimensional volume of a simplex, from the singular values of its edges.

    With ``B = [a_1 - a_0, ..., a_k - a_0]`` of shape (P, k), the volume is
    ``V = sqrt(det(B^T B)) / k! = prod_j sigma_j(B) / k!``. The vertices are first divided
    by a power of two that brings their largest coordinate to [1, 2), and the edges by
    their lengths ``l_j``; then ``log V = k log c + sum_j log l_j + sum_j log sigma_j(B_unit)
    - log k!``, with the singular values of the unit edge matrix ``B_unit`` computed in
    float64. This stays accurate where ``V`` itself under- or overflows (networks with
    millions of weights, coordinates from 1e-300 to 1e300) and, unlike the determinant of
    the Gram matrix ``B^T B``, resolves flat simplexes down to float64 rounding rather
    than its square root. This is the volume term of Eq. 1.

    Parameters
    ----------
    vertices : Tensor of shape (..., n_vertices, n_params)
        The vertices ``a_0..a_k``; any dtype (computed in float64).

    Returns
    -------
    Tensor of shape (...), float64
        ``log V``, differentiable with respect to ``vertices``. A single point
        (``n_vertices=1``) has volume 1 (log 0) by convention. A degenerate simplex gives
        ``-inf`` (with zero gradient): affinely dependent vertices, more vertices than
        ``n_params + 1``, a repeated vertex, or a smallest singular value of ``B_unit``
        within the rounding of the coordinates, ``2 k (eps max_j (|a_j| + |a_0|) /
        |a_j - a_0| + eps_64)`` with ``eps`` the machine epsilon of ``vertices.dtype``
        (a float32 simplex thinner than its float32 rounding is flat). Vertices with NaN or
        infinite coordinates give NaN.

    Raises
    ------
    ValueError
        If ``vertices`` has fewer than two dimensions or no vertex.

    Examples
    --------
    >>> import torch
    >>> corner = torch.cat([torch.zeros(1, 3), torch.eye(3)])  # unit corner 3-simplex
    >>> round(float(log_simplex_volume(corner).exp()), 12)  # 1 / 3!
    0.166666666667
    >>> round(float(log_simplex_volume(1e-200 * corner.double())), 6)  # 3 log(1e-200) - log(3!)
    -1383.342815
    >>> float(log_simplex_volume(torch.tensor([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]])))  # collinear
    -inf
    """
    _check_vertices(vertices)
    k = vertices.shape[-2] - 1
    batch = vertices.shape[:-2]
    if k == 0:
        return vertices.new_zeros(batch, dtype=torch.float64)
    if vertices.shape[-1] == 0:
        return torch.full(batch, -math.inf, dtype=torch.float64, device=vertices.device)
    points = vertices.to(torch.float64)
    scale = _power_of_two_scale(points, (-2, -1))  # (..., 1, 1)
    points = points / scale
    edges = (points[..., 1:, :] - points[..., :1, :]).transpose(-1, -2)  # (..., P, k)
    lengths = torch.linalg.vector_norm(edges.detach(), dim=-2, keepdim=True)  # (..., 1, k)
    finite = torch.isfinite(lengths).all(-1).squeeze(-1)
    repeated = (lengths == 0).any(-1).squeeze(-1)
    usable = (finite & ~repeated)[..., None, None]
    safe_lengths = torch.where(usable, lengths, torch.ones_like(lengths))
    unit = torch.where(usable, edges / safe_lengths, torch.zeros_like(edges))
    sigma = torch.linalg.svdvals(unit)  # (..., min(P, k)), descending
    tolerance = _flatness_tolerance(points, safe_lengths, _input_eps(vertices))
    flat = repeated | (sigma[..., -1] <= tolerance) | (sigma.shape[-1] < k)
    safe_sigma = torch.where(flat[..., None], torch.ones_like(sigma), sigma)
    log_volume = (k * scale.log().reshape(batch) + safe_lengths.log().sum((-2, -1))
                  + safe_sigma.log().sum(-1) - math.lgamma(k + 1))
    log_volume = torch.where(flat, torch.full_like(log_volume, -math.inf), log_volume)
    return torch.where(finite, log_volume, torch.full_like(log_volume, math.nan))


def simplex_volume(vertices: Tensor) -> Tensor:
    """k-dimensional volume ``V = sqrt(det(B^T B)) / k!`` of a simplex (float64).

    See :func:`log_simplex_volume`, of which this is the exponential: prefer the log
    for networks, whose volumes underflow or overflow float64 (``V`` is then 0 or ``inf``).

    Parameters
    ----------
    vertices : Tensor of shape (..., n_vertices, n_params)

    Returns
    -------
    Tensor of shape (...), float64
        0 for a degenerate simplex (see :func:`log_simplex_volume`).

    Examples
    --------
    >>> import torch
    >>> triangle = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.5, 3 ** 0.5 / 2]])
    >>> round(float(simplex_volume(triangle)), 6)  # sqrt(3) / 4
    0.433013
    """
    return log_simplex_volume(vertices).exp()


def _below_rounding(points: Tensor, distances: Tensor, volume: Tensor, vertices: Tensor) -> Tensor:
    """Whether a volume of edges at most 2 could come from a flat simplex and rounding.

    A simplex whose unit edge matrix has its smallest singular value at the tolerance of
    :func:`_flatness_tolerance` (and the others at most ``sqrt(k)``) has volume at most
    ``2^k k^((k - 1) / 2) tolerance / k!``.
    """
    k = points.shape[-2] - 1
    lengths = distances[..., :1, 1:]  # |a_j - a_0|, (..., 1, k)
    repeated = (lengths == 0).any(-1).squeeze(-1)
    lengths = torch.where(lengths > 0, lengths, torch.ones_like(lengths))
    tolerance = _flatness_tolerance(points, lengths, _input_eps(vertices))
    return repeated | (volume <= tolerance * 2.0**k * k ** ((k - 1) / 2) / math.factorial(k))


def cayley_menger_volume(vertices: Tensor) -> Tensor:
    """Volume from the Cayley-Menger determinant (Benton et al. 2021, Appendix A.1).

    ``V^2 = (-1)^(k+1) / (2^k (k!)^2) det(CM)`` with ``CM`` the (k+2) x (k+2) matrix
    of squared pairwise distances bordered by ones, with a zero corner. The vertices are
    first divided by a power of two ``c`` that brings their largest distance to [1, 2),
    and ``V = c^k V_unit``, so that the squared distances and the determinant neither
    overflow nor underflow. Numerically worse than :func:`simplex_volume` (a larger
    determinant, of squared distances, resolves ``V_unit`` only to about the square root
    of float64's epsilon); kept as an independent cross-check.

    Parameters
    ----------
    vertices : Tensor of shape (..., n_vertices, n_params)

    Returns
    -------
    Tensor of shape (...), float64
        ``V`` (not ``V^2``). Exactly 0 for a degenerate simplex: where ``det(CM)`` of the
        rescaled vertices is within its rounding, ``8 eps_64 (k + 2)^((k + 4) / 2)``, or
        ``V_unit`` within the rounding of the coordinates (the tolerance of
        :func:`log_simplex_volume`). ``inf`` or 0 where ``V`` itself over- or underflows
        float64.

    Raises
    ------
    ValueError
        If ``vertices`` has fewer than two dimensions or no vertex.

    Examples
    --------
    >>> import torch
    >>> round(float(cayley_menger_volume(torch.tensor([[0.0], [2.0]]))), 6)
    2.0
    """
    _check_vertices(vertices)
    points = vertices.to(torch.float64)
    k = points.shape[-2] - 1
    if points.shape[-1] == 0:  # all vertices at the one point of R^0
        return torch.full(points.shape[:-2], 0.0 if k else 1.0, dtype=torch.float64, device=points.device)
    coordinate_scale = _power_of_two_scale(points, (-2, -1))
    points = points / coordinate_scale
    distances = torch.cdist(points, points, compute_mode="donot_use_mm_for_euclid_dist")
    distance_scale = _power_of_two_scale(distances, (-2, -1))
    points, distances = points / distance_scale, distances / distance_scale
    batch = distances.shape[:-2]
    cm = distances.new_ones(*batch, k + 2, k + 2)
    cm[..., 0, 0] = 0.0
    cm[..., 1:, 1:] = distances.square()
    det = (-1.0) ** (k + 1) * torch.linalg.det(cm)
    volume = (det / (2.0**k * math.factorial(k) ** 2)).clamp_min(0.0).sqrt()  # of edges at most 2
    if k > 0:
        flat = (det <= 8 * _EPS64 * (k + 2) ** ((k + 4) / 2)) | _below_rounding(points, distances, volume, vertices)
        volume = torch.where(flat, torch.zeros_like(volume), volume)
    log_scale = (coordinate_scale * distance_scale).log().reshape(batch)
    return torch.exp(k * log_scale + volume.log())


def hull_basis(vertices: Tensor) -> tuple[Tensor, Tensor]:
    """Origin and orthonormal basis of the affine hull of frozen vertices.

    Parameters
    ----------
    vertices : Tensor of shape (n_vertices, n_params)

    Returns
    -------
    origin : Tensor of shape (n_params,), float64
        The first vertex ``a_0``.
    basis : Tensor of shape (n_params, n_vertices - 1), float64
        Orthonormal columns spanning ``a_i - a_0`` (reduced QR).

    Examples
    --------
    >>> import torch
    >>> origin, basis = hull_basis(torch.tensor([[0.0, 0.0, 0.0], [2.0, 0.0, 0.0]]))
    >>> basis.abs().T
    tensor([[1., 0., 0.]], dtype=torch.float64)
    """
    _check_vertices(vertices)
    origin = vertices[0].to(torch.float64)
    edges = _edges(vertices)
    if edges.numel():  # each edge scaled by a power of two: the same Q, at any scale
        edges = edges / _power_of_two_scale(edges, -2)
    q, _ = torch.linalg.qr(edges, mode="reduced")
    return origin, q


def log_volume_with_vertex(
    new_vertex: Tensor, origin: Tensor, basis: Tensor, frozen_log_volume: float | Tensor
) -> Tensor:
    """Log-volume of a simplex after adding one vertex to a frozen one, exactly.

    ``log V_k = log V_{k-1} + log h - log k``, with ``h`` the distance of the new
    vertex to the affine hull of the ``k`` frozen vertices (base times height over
    dimension). When only the newest vertex trains (Section 5.1) this is the volume
    term of Eq. 1 at the cost of one projection, and its gradient reaches only
    ``new_vertex``.

    Parameters
    ----------
    new_vertex : Tensor of shape (n_params,)
    origin, basis : Tensor
        From :func:`hull_basis` of the frozen vertices (``basis`` has ``k - 1`` columns).
    frozen_log_volume : float or Tensor
        :func:`log_simplex_volume` of the frozen vertices.

    Returns
    -------
    Tensor of shape (), float64

    Examples
    --------
    >>> import torch
    >>> frozen = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    >>> origin, basis = hull_basis(frozen)
    >>> v = log_volume_with_vertex(torch.tensor([0.3, 2.0]), origin, basis, 0.0)
    >>> round(float(v.exp()), 6)  # triangle of base 1 and height 2
    1.0
    """
    k = basis.shape[1] + 1
    vertex = new_vertex.to(torch.float64)
    scale = _power_of_two_scale(vertex - origin, -1)  # overflow-free norms at any scale
    d = (vertex - origin) / scale
    residual = d - basis @ (basis.T @ d)
    height = torch.linalg.vector_norm(residual)
    reach = torch.linalg.vector_norm(vertex.detach() / scale) + torch.linalg.vector_norm(origin / scale)
    tolerance = 2 * k * (_input_eps(new_vertex) * reach + _EPS64 * torch.linalg.vector_norm(d.detach()))
    flat = ~(height > tolerance)  # also where d is 0 (the new vertex on the origin)
    log_height = torch.where(flat, torch.ones_like(height), height).log() + scale.squeeze(-1).log()
    log_height = torch.where(flat, torch.full_like(height, -math.inf), log_height)
    return frozen_log_volume + log_height - math.log(k)
