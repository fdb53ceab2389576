import math

import pytest
import torch

from sklearn_espro.geometry import (
    cayley_menger_volume,
    hull_basis,
    log_simplex_volume,
    log_volume_with_vertex,
    sample_barycentric,
    simplex_volume,
)


def _random_rotation(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    return q


@pytest.mark.parametrize("k", [1, 2, 3, 4, 6])
def test_unit_corner_simplex_has_volume_one_over_k_factorial(k):
    corner = torch.cat([torch.zeros(1, k, dtype=torch.float64), torch.eye(k, dtype=torch.float64)])
    embedded = torch.cat([corner, torch.zeros(k + 1, 5, dtype=torch.float64)], dim=1) @ _random_rotation(k + 5)
    expected = 1.0 / math.factorial(k)
    assert simplex_volume(embedded).item() == pytest.approx(expected, rel=1e-10)
    assert cayley_menger_volume(embedded).item() == pytest.approx(expected, rel=1e-8)


@pytest.mark.parametrize("side", [0.5, 1.0, 3.0])
def test_equilateral_triangle_area(side):
    tri = side * torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.5, math.sqrt(3) / 2, 0.0]], dtype=torch.float64)
    tri = tri @ _random_rotation(3, seed=1) + torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    assert simplex_volume(tri).item() == pytest.approx(math.sqrt(3) / 4 * side**2, rel=1e-12)


def test_regular_tetrahedron_volume():
    tet = torch.tensor([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], dtype=torch.float64)
    side = 2 * math.sqrt(2)
    assert simplex_volume(tet).item() == pytest.approx(side**3 / (6 * math.sqrt(2)), rel=1e-12)


@pytest.mark.parametrize("k,n_params", [(1, 3), (2, 7), (3, 20), (5, 50)])
def test_gram_form_matches_cayley_menger(k, n_params):
    g = torch.Generator().manual_seed(k)
    vertices = torch.randn(k + 1, n_params, generator=g, dtype=torch.float64)
    assert simplex_volume(vertices).item() == pytest.approx(cayley_menger_volume(vertices).item(), rel=1e-8)


def test_batched_volumes_match_one_by_one():
    vertices = torch.randn(4, 3, 10, dtype=torch.float64)
    batched = log_simplex_volume(vertices)
    assert batched.shape == (4,)
    for i in range(4):
        assert batched[i].item() == pytest.approx(log_simplex_volume(vertices[i]).item(), rel=1e-12)


def test_point_has_unit_volume_and_degenerate_simplex_zero():
    assert log_simplex_volume(torch.randn(1, 5)).item() == 0.0
    line = torch.tensor([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]])
    assert log_simplex_volume(line).item() == -math.inf
    assert simplex_volume(line).item() == 0.0
    repeated = torch.ones(3, 4)
    assert not torch.isnan(simplex_volume(repeated)) and simplex_volume(repeated).item() == 0.0
    assert cayley_menger_volume(repeated).item() == pytest.approx(0.0, abs=1e-12)


def test_log_volume_gradcheck():
    vertices = torch.randn(4, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(log_simplex_volume, (vertices,))


def test_log_volume_gradient_of_simplex_scaling():
    # log V(s * S) = k log s + log V(S): d/ds at s = 1 is k.
    vertices = torch.randn(3, 5, dtype=torch.float64)
    s = torch.tensor(1.0, dtype=torch.float64, requires_grad=True)
    log_simplex_volume(s * vertices).backward()
    assert s.grad.item() == pytest.approx(2.0, rel=1e-10)


@pytest.mark.parametrize("n_frozen", [1, 2, 4])
def test_incremental_volume_equals_full_volume(n_frozen):
    frozen = torch.randn(n_frozen, 12, dtype=torch.float64)
    new = torch.randn(12, dtype=torch.float64, requires_grad=True)
    origin, basis = hull_basis(frozen)
    inc = log_volume_with_vertex(new, origin, basis, log_simplex_volume(frozen))
    full = log_simplex_volume(torch.cat([frozen, new.unsqueeze(0)]))
    assert inc.item() == pytest.approx(full.item(), rel=1e-10)
    assert torch.autograd.gradcheck(lambda v: log_volume_with_vertex(v, origin, basis, 0.0), (new,))


def test_barycentric_samples_lie_on_the_simplex():
    t = sample_barycentric(1000, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert t.shape == (1000, 4)
    assert (t >= 0).all()
    assert torch.allclose(t.sum(1), torch.ones(1000, dtype=torch.float64))


def test_barycentric_samples_are_uniform():
    # Uniform on the 2-simplex: each coordinate is Beta(1, 2), mean 1/3, variance 1/18.
    t = sample_barycentric(40000, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert t.mean(0).tolist() == pytest.approx([1 / 3] * 3, abs=0.01)
    assert t.var(0).tolist() == pytest.approx([1 / 18] * 3, abs=0.003)


def test_barycentric_samples_are_reproducible():
    a = sample_barycentric(5, 3, generator=torch.Generator().manual_seed(7))
    b = sample_barycentric(5, 3, generator=torch.Generator().manual_seed(7))
    c = sample_barycentric(5, 3, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


# -- extreme scales, degenerate and flat simplexes (issue 20) ---------------------------------


def _corner(k, n_params, seed=0):
    """Unit corner k-simplex, rotated into n_params dimensions (volume 1 / k!)."""
    corner = torch.cat([torch.zeros(1, k, dtype=torch.float64), torch.eye(k, dtype=torch.float64)])
    return torch.cat([corner, torch.zeros(k + 1, n_params - k, dtype=torch.float64)], 1) @ _random_rotation(n_params, seed)


@pytest.mark.parametrize("scale", [1e-300, 1e-200, 1e-100, 1e100, 1e200, 1e300])
@pytest.mark.parametrize("k", [1, 3, 5])
def test_log_volume_at_extreme_scales_matches_closed_form(scale, k):
    # log V(s * S) = k log s - log k! for the unit corner simplex S
    vertices = scale * _corner(k, k + 3, seed=k)
    expected = k * math.log(scale) - math.lgamma(k + 1)
    assert log_simplex_volume(vertices).item() == pytest.approx(expected, rel=1e-12, abs=1e-9)


def test_batched_log_volumes_at_different_scales():
    vertices = torch.stack([1e-200 * _corner(3, 6), _corner(3, 6), 1e200 * _corner(3, 6)])
    expected = [3 * math.log(s) - math.log(6) for s in (1e-200, 1.0, 1e200)]
    assert log_simplex_volume(vertices).tolist() == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("scale", [1e-200, 1e200])
def test_log_volume_gradient_at_extreme_scales(scale):
    # log V(s * S) = k log s + log V(S): the gradient with respect to the vertices is grad(S) / s
    base = torch.randn(4, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    plain = base.clone().requires_grad_(True)
    log_simplex_volume(plain).backward()
    scaled = (scale * base).requires_grad_(True)
    log_simplex_volume(scaled).backward()
    assert torch.isfinite(scaled.grad).all()
    torch.testing.assert_close(scaled.grad * scale, plain.grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("scale", [1e-100, 1e100])
def test_cayley_menger_volume_at_extreme_scales(scale):
    # V = s^3 / 3! is representable in float64, but the determinant of squared distances is not
    vertices = scale * _corner(3, 5)
    assert cayley_menger_volume(vertices).item() == pytest.approx(scale**3 / 6, rel=1e-8)


def _planar(n_points, n_params, seed, dtype):
    """n_points points of a 2-D plane in n_params dimensions, away from the origin."""
    g = torch.Generator().manual_seed(seed)
    coords = torch.rand(n_points, 2, generator=g, dtype=torch.float64)
    directions = torch.randn(2, n_params, generator=g, dtype=torch.float64)
    offset = 10 * torch.randn(n_params, generator=g, dtype=torch.float64)
    return (offset + coords @ directions).to(dtype)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("n_points,n_params", [(4, 3), (4, 6), (5, 8)])
def test_points_in_a_plane_have_log_volume_minus_inf(dtype, seed, n_points, n_params):
    vertices = _planar(n_points, n_params, seed, dtype).requires_grad_(True)
    log_volume = log_simplex_volume(vertices)
    assert log_volume.item() == -math.inf
    log_volume.backward()
    assert torch.isfinite(vertices.grad).all()
    vertices = vertices.detach()
    assert simplex_volume(vertices).item() == 0.0
    assert cayley_menger_volume(vertices).item() == 0.0


@pytest.mark.parametrize("height", [1e-3, 1e-6, 1e-9])
def test_a_flat_but_not_degenerate_tetrahedron_keeps_its_volume(height):
    # apex at `height` above the centroid of an equilateral triangle of side 1: V = (sqrt(3) / 4) * height / 3
    tet = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.5, math.sqrt(3) / 2, 0.0],
                        [0.5, math.sqrt(3) / 6, height]], dtype=torch.float64)
    tet = torch.cat([tet, torch.zeros(4, 3, dtype=torch.float64)], 1) @ _random_rotation(6, seed=2) + 0.5
    expected = math.log(math.sqrt(3) / 4 * height / 3)
    assert log_simplex_volume(tet).item() == pytest.approx(expected, abs=1e-5)


def test_more_points_than_dimensions_are_degenerate():
    square = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=torch.float64)
    assert log_simplex_volume(square).item() == -math.inf
    assert log_simplex_volume(torch.zeros(3, 0)).item() == -math.inf


def test_non_finite_vertices_give_nan():
    vertices = _corner(2, 4)
    vertices[1, 2] = math.nan
    assert math.isnan(log_simplex_volume(vertices).item())
    vertices[1, 2] = math.inf
    assert math.isnan(log_simplex_volume(vertices).item())


@pytest.mark.parametrize("bad", [torch.zeros(3), torch.zeros(0, 4)])
def test_vertices_of_the_wrong_shape_are_refused(bad):
    for f in (log_simplex_volume, simplex_volume, cayley_menger_volume):
        with pytest.raises(ValueError, match="vertices"):
            f(bad)


@pytest.mark.parametrize("scale", [1e-200, 1e200])
def test_incremental_volume_at_extreme_scales(scale):
    full = scale * _corner(3, 6)
    origin, basis = hull_basis(full[:3])
    inc = log_volume_with_vertex(full[3], origin, basis, log_simplex_volume(full[:3]))
    assert inc.item() == pytest.approx(3 * math.log(scale) - math.log(6), rel=1e-12)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_a_new_vertex_in_the_hull_has_log_volume_minus_inf(dtype):
    frozen = _planar(3, 6, 0, torch.float64)
    new = (torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64) @ frozen).to(dtype).requires_grad_(True)
    origin, basis = hull_basis(frozen)
    inc = log_volume_with_vertex(new, origin, basis, log_simplex_volume(frozen))
    assert inc.item() == -math.inf
    inc.backward()
    assert torch.isfinite(new.grad).all()
