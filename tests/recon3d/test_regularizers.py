"""Laplacian, symmetry and closeness terms: zero where they must be, hand-checked values else."""

from __future__ import annotations

import pytest
import torch

from edgevision.errors import ShapeError
from edgevision.recon3d.body import BodyModel
from edgevision.recon3d.mesh import edges, uniform_laplacian
from edgevision.recon3d.regularizers import closeness_term, laplacian_term, symmetry_term

DOUBLE = torch.float64
TETRAHEDRON = torch.tensor([[0, 1, 2], [0, 3, 1], [0, 2, 3], [1, 3, 2]])
REFLECT = torch.tensor([-1.0, 1.0, 1.0], dtype=DOUBLE)


def test_tetrahedron_laplacian_by_hand() -> None:
    laplacian = uniform_laplacian(TETRAHEDRON, 4, dtype=DOUBLE)
    expected = torch.full((4, 4), -1 / 3, dtype=DOUBLE).fill_diagonal_(1.0)  # three neighbours each
    torch.testing.assert_close(laplacian.to_dense(), expected)
    offsets = torch.zeros(4, 3, dtype=DOUBLE)
    offsets[0, 0] = 1.0
    # L D: (1, 0, 0) at vertex 0, (-1/3, 0, 0) at the other three: 1 + 3 / 9
    torch.testing.assert_close(laplacian_term(offsets, laplacian), torch.tensor(4 / 3, dtype=DOUBLE))
    # its gradient (for the optimiser) is 2 L^T L D
    offsets.requires_grad_()
    laplacian_term(offsets, laplacian).backward()
    torch.testing.assert_close(offsets.grad, 2 * expected.T @ expected @ offsets.detach())


def test_isolated_vertex_has_a_zero_laplacian_row() -> None:
    laplacian = uniform_laplacian(TETRAHEDRON, 5, dtype=DOUBLE).to_dense()
    assert torch.equal(laplacian[4], torch.zeros(5, dtype=DOUBLE))


def test_laplacian_term_on_the_body(small_body: BodyModel) -> None:
    laplacian = uniform_laplacian(small_body.faces, small_body.num_vertices, dtype=DOUBLE)
    zero = torch.zeros(small_body.num_vertices, 3, dtype=DOUBLE)
    assert laplacian_term(zero, laplacian) == 0  # the undeformed body
    shift = zero + torch.tensor([0.01, -0.02, 0.03], dtype=DOUBLE)
    assert laplacian_term(shift, laplacian) < 1e-25  # a translation is smooth
    # a 1 cm bump on one vertex i: (L D)_i = D_i, (L D)_j = -D_i / n_j for each neighbour j
    pairs = edges(small_body.faces)
    degree = torch.bincount(pairs.flatten(), minlength=small_body.num_vertices)
    vertex = int(torch.argmax(small_body.template[:, 1]))  # the top of the head
    neighbours = torch.cat([pairs[pairs[:, 0] == vertex, 1], pairs[pairs[:, 1] == vertex, 0]])
    bump = zero.clone()
    bump[vertex, 2] = 0.01
    expected = 0.01**2 * (1 + (1 / degree[neighbours].to(DOUBLE) ** 2).sum())
    torch.testing.assert_close(laplacian_term(bump, laplacian), expected)


def test_symmetry_term(small_body: BodyModel) -> None:
    mirror = small_body.mirror
    zero = torch.zeros(small_body.num_vertices, 3, dtype=DOUBLE)
    assert symmetry_term(zero, mirror) == 0
    # any offsets made symmetric (averaged with their mirror image) score 0
    random = 0.01 * torch.randn(
        small_body.num_vertices, 3, generator=torch.Generator().manual_seed(0), dtype=DOUBLE
    )
    symmetric = (random + random[mirror] * REFLECT) / 2
    assert symmetry_term(symmetric, mirror) < 1e-30
    assert symmetry_term(random, mirror) > 0
    left = int(torch.nonzero(small_body.template[:, 0] > 0.1)[0])
    right = int(mirror[left])
    one_side = zero.clone()
    one_side[left] = torch.tensor([0.01, 0.02, 0.03], dtype=DOUBLE)
    # counted at the vertex and at its mirror: 2 * |D|^2
    torch.testing.assert_close(symmetry_term(one_side, mirror), torch.tensor(2 * 14e-4, dtype=DOUBLE))
    one_side[right] = torch.tensor([-0.01, 0.02, 0.03], dtype=DOUBLE)  # the mirror image: 0
    assert symmetry_term(one_side, mirror) < 1e-30
    one_side[right] = torch.tensor([0.01, 0.02, 0.03], dtype=DOUBLE)  # not reflected: (2 dx)^2 twice
    torch.testing.assert_close(symmetry_term(one_side, mirror), torch.tensor(8e-4, dtype=DOUBLE))


def test_closeness_term() -> None:
    offsets = torch.tensor([[0.01, 0.0, 0.0], [0.0, -0.02, 0.02]], dtype=DOUBLE)
    torch.testing.assert_close(closeness_term(offsets), torch.tensor(9e-4, dtype=DOUBLE))


def test_terms_refuse_bad_offsets(small_body: BodyModel) -> None:
    laplacian = uniform_laplacian(small_body.faces, small_body.num_vertices, dtype=DOUBLE)
    with pytest.raises(ShapeError, match="offsets must have shape"):
        laplacian_term(torch.zeros(3, 3, dtype=DOUBLE), laplacian)
    with pytest.raises(ShapeError, match="offsets must have shape"):
        symmetry_term(torch.zeros(3, 2, dtype=DOUBLE), small_body.mirror)
