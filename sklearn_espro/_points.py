"""Points of simplexes: uniform samples of a simplex or a complex, and the plane of three points.

Pure tensor math, public through :mod:`sklearn_espro.geometry`.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["plane_basis", "sample_barycentric", "sample_complex_coords"]


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
