"""Pure tensor geometry of simplexes: volumes, sampling, and the affine hull.

Every function here is a typed function of tensors with no state and no training.
A simplex with vertices ``a_0, ..., a_k`` in ``R^P`` is given as a tensor of shape
``(n_vertices, n_params)`` with ``n_vertices = k + 1``; leading batch dimensions are
allowed wherever a docstring says ``(..., n_vertices, n_params)``.

The volume formula lives in :func:`log_simplex_volume` (Gram form, used everywhere)
and :func:`cayley_menger_volume` (Appendix A.1 of Benton et al. 2021, kept as the
reference the Gram form is tested against).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

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


def _edges(vertices: Tensor) -> Tensor:
    """Edge vectors ``a_i - a_0`` in float64, shape (..., n_params, n_vertices - 1)."""
    vertices = vertices.to(torch.float64)
    return (vertices[..., 1:, :] - vertices[..., :1, :]).transpose(-1, -2)


def log_simplex_volume(vertices: Tensor) -> Tensor:
    """Log of the k-dimensional volume of a simplex, from the Gram matrix of its edges.

    With ``B = [a_1 - a_0, ..., a_k - a_0]`` of shape (P, k), the volume is
    ``V = sqrt(det(B^T B)) / k!``; its log is computed with ``slogdet`` on the
    k x k Gram matrix in float64, which stays finite where ``V`` itself under- or
    overflows (networks with millions of weights). This is the volume term of Eq. 1.

    Parameters
    ----------
    vertices : Tensor of shape (..., n_vertices, n_params)
        The vertices ``a_0..a_k``; any floating dtype (computed in float64).

    Returns
    -------
    Tensor of shape (...), float64
        ``log V``. A single point (``n_vertices=1``) has volume 1 (log 0) by
        convention; a degenerate simplex (affinely dependent vertices) gives ``-inf``.

    Examples
    --------
    >>> import torch
    >>> corner = torch.cat([torch.zeros(1, 3), torch.eye(3)])  # unit corner 3-simplex
    >>> round(float(log_simplex_volume(corner).exp()), 12)  # 1 / 3!
    0.166666666667
    """
    k = vertices.shape[-2] - 1
    if k == 0:
        return vertices.new_zeros(vertices.shape[:-2], dtype=torch.float64)
    edges = _edges(vertices)
    gram = edges.transpose(-1, -2) @ edges
    sign, logabsdet = torch.linalg.slogdet(gram)
    logabsdet = torch.where(sign > 0, logabsdet, torch.full_like(logabsdet, -math.inf))
    return 0.5 * logabsdet - math.lgamma(k + 1)


def simplex_volume(vertices: Tensor) -> Tensor:
    """k-dimensional volume ``V = sqrt(det(B^T B)) / k!`` of a simplex (float64).

    See :func:`log_simplex_volume`, of which this is the exponential: prefer the log
    for networks, whose volumes underflow or overflow float64.

    Parameters
    ----------
    vertices : Tensor of shape (..., n_vertices, n_params)

    Returns
    -------
    Tensor of shape (...), float64

    Examples
    --------
    >>> import torch
    >>> triangle = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.5, 3 ** 0.5 / 2]])
    >>> round(float(simplex_volume(triangle)), 6)  # sqrt(3) / 4
    0.433013
    """
    return log_simplex_volume(vertices).exp()


def cayley_menger_volume(vertices: Tensor) -> Tensor:
    """Volume from the Cayley-Menger determinant (Benton et al. 2021, Appendix A.1).

    ``V^2 = (-1)^(k+1) / (2^k (k!)^2) det(CM)`` with ``CM`` the (k+2) x (k+2) matrix
    of squared pairwise distances bordered by ones, with a zero corner. Numerically
    worse than :func:`simplex_volume` (a larger, badly scaled determinant); kept as an
    independent cross-check.

    Parameters
    ----------
    vertices : Tensor of shape (..., n_vertices, n_params)

    Returns
    -------
    Tensor of shape (...), float64
        ``V`` (not ``V^2``), clamped at zero where rounding makes ``V^2`` negative.

    Examples
    --------
    >>> import torch
    >>> round(float(cayley_menger_volume(torch.tensor([[0.0], [2.0]]))), 6)
    2.0
    """
    vertices = vertices.to(torch.float64)
    k = vertices.shape[-2] - 1
    sq_dist = torch.cdist(vertices, vertices).square()
    batch = sq_dist.shape[:-2]
    cm = sq_dist.new_ones(*batch, k + 2, k + 2)
    cm[..., 0, 0] = 0.0
    cm[..., 1:, 1:] = sq_dist
    scale = (-1.0) ** (k + 1) / (2.0**k * math.factorial(k) ** 2)
    return (scale * torch.linalg.det(cm)).clamp_min(0.0).sqrt()


def sample_barycentric(
    n_samples: int,
    n_vertices: int,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Barycentric coordinates of points drawn uniformly in a simplex.

    ``t ~ Dirichlet(1, ..., 1)``, drawn as ``t_i = e_i / sum(e)`` with
    ``e_i ~ Exp(1)``: the sampling of ``theta ~ U(S)`` in Eq. 1 and Eq. 4.

    Parameters
    ----------
    n_samples : int
        Number of points.
    n_vertices : int
        Number of vertices of the simplex.
    generator : torch.Generator, default=None
        Seeded generator for reproducible draws; it must live on ``device``.
    device : torch.device or str, default=None
    dtype : torch.dtype, default=torch.float32

    Returns
    -------
    Tensor of shape (n_samples, n_vertices)
        Non-negative rows summing to one.

    Examples
    --------
    >>> import torch
    >>> t = sample_barycentric(4, 3, generator=torch.Generator().manual_seed(0))
    >>> t.shape, bool(torch.allclose(t.sum(1), torch.ones(4)))
    (torch.Size([4, 3]), True)
    """
    e = torch.empty(n_samples, n_vertices, device=device, dtype=dtype)
    e.exponential_(generator=generator)
    return e / e.sum(dim=1, keepdim=True)


def sample_complex_coords(
    faces: Tensor,
    log_volumes: Tensor,
    n_samples: int,
    n_vertices: int,
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Points drawn uniformly from a simplicial complex, as weights over all its vertices.

    A simplex is picked with probability proportional to its volume, then a point
    uniformly inside it (:func:`sample_barycentric`); one simplex is the plain case.

    Parameters
    ----------
    faces : Tensor of shape (n_simplexes, k)
        Vertex indices of each simplex (all simplexes have ``k`` vertices).
    log_volumes : Tensor of shape (n_simplexes,)
    n_samples, n_vertices : int
        Number of points; number of vertices of the whole complex.
    generator : torch.Generator, default=None
    dtype : torch.dtype, default=torch.float32

    Returns
    -------
    Tensor of shape (n_samples, n_vertices)
        Rows summing to one, non-zero only on the vertices of the picked simplex.

    Examples
    --------
    >>> import torch
    >>> faces = torch.tensor([[0, 2], [1, 2]])  # two segments sharing vertex 2
    >>> c = sample_complex_coords(faces, torch.tensor([0.0, -50.0]), 3, 3)
    >>> bool((c[:, 1] == 0).all()), bool(torch.allclose(c.sum(1), torch.ones(3)))
    (True, True)
    """
    device = generator.device if generator is not None else faces.device
    n_simplexes, k = faces.shape
    if n_simplexes > 1:
        weights = torch.softmax(log_volumes.detach().double(), dim=0).to(device)
        picked = torch.multinomial(weights, n_samples, replacement=True, generator=generator)
    else:
        picked = torch.zeros(n_samples, dtype=torch.long, device=device)
    t = sample_barycentric(n_samples, k, generator=generator, device=device, dtype=dtype)
    coords = torch.zeros(n_samples, n_vertices, dtype=dtype, device=device)
    return coords.scatter_(1, faces.to(device)[picked], t)


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
    origin = vertices[0].to(torch.float64)
    q, _ = torch.linalg.qr(_edges(vertices), mode="reduced")
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
    d = new_vertex.to(torch.float64) - origin
    residual = d - basis @ (basis.T @ d)
    return frozen_log_volume + torch.linalg.vector_norm(residual).log() - math.log(k)


def plane_basis(anchors: Tensor) -> tuple[Tensor, Tensor]:
    """Centre and orthonormal basis of the plane through three points (Section 4).

    ``c`` is the mean of the three points; ``u`` is the unit vector along
    ``a_1 - a_0`` and ``v`` the unit part of ``a_2 - a_0`` orthogonal to ``u``
    (Gram-Schmidt), both in float64.

    Parameters
    ----------
    anchors : Tensor of shape (3, n_params)

    Returns
    -------
    center : Tensor of shape (n_params,)
    basis : Tensor of shape (2, n_params)
        Rows ``u`` and ``v``; a point ``w`` has plane coordinates ``basis @ (w - center)``.

    Raises
    ------
    ValueError
        When the three points lie on a line (no plane).

    Examples
    --------
    >>> import torch
    >>> center, basis = plane_basis(torch.tensor([[0.0, 0, 0], [2.0, 0, 0], [0.0, 3, 0]]))
    >>> basis
    tensor([[1., 0., 0.],
            [0., 1., 0.]], dtype=torch.float64)
    """
    anchors = anchors.to(torch.float64)
    center = anchors.mean(dim=0)
    first = anchors[1] - anchors[0]
    second = anchors[2] - anchors[0]
    u = first / torch.linalg.vector_norm(first)
    second = second - (second @ u) * u
    norm = torch.linalg.vector_norm(second)
    scale = torch.linalg.vector_norm(anchors[1:] - anchors[0], dim=1).max()
    if not torch.isfinite(u).all() or norm <= 1e-6 * scale:  # float32 weights: collinear to rounding
        raise ValueError("The three anchors lie on one line (or coincide): they span no plane.")
    return center, torch.stack([u, second / norm])
