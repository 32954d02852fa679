"""The regularisers of the consensus shape (Alldieck et al. Sec. 3.3, E_lp, E_sym, E_var): Laplacian
smoothness, left/right symmetry and closeness to the body, each a sum over vertices (not a mean:
the weights of the paper's coarse-to-fine schedule multiply these sums)."""

from __future__ import annotations

import torch

from edgevision.recon3d._checks import check_tensor

# x-reflection: the mirror image of an offset (dx, dy, dz) on the other side is (-dx, dy, dz).
_REFLECT_X = (-1.0, 1.0, 1.0)


def laplacian_term(offsets: torch.Tensor, laplacian: torch.Tensor) -> torch.Tensor:
    """``sum_i ||L(T + D)_i - L(T)_i||^2`` (E_lp): how far the deformed mesh's Laplacian
    coordinates move from the template's. The uniform Laplacian is linear and does not depend on
    the vertex positions, so this is ``||L D||^2``: zero for D = 0 and for a translation.

    Args:
        offsets: ``(V, 3)`` D, metres.
        laplacian: sparse ``(V, V)`` (:func:`edgevision.recon3d.mesh.uniform_laplacian`).
    Returns: a scalar, m^2.
    """
    check_tensor("offsets", offsets, (laplacian.shape[0], 3))
    return (torch.sparse.mm(laplacian, offsets) ** 2).sum()


def symmetry_term(offsets: torch.Tensor, mirror: torch.Tensor) -> torch.Tensor:
    """``sum_i ||D_i - reflect_x(D_mirror(i))||^2`` (E_sym) over every vertex (so each
    left/right pair counts twice, and a mid-plane vertex's own x offset counts as ``(2 dx)^2``).

    Args:
        offsets: ``(V, 3)`` D, metres.
        mirror: ``(V,)`` each vertex's mirror vertex.
    Returns: a scalar, m^2.
    """
    check_tensor("offsets", offsets, (mirror.shape[0], 3))
    reflected = offsets[mirror] * offsets.new_tensor(_REFLECT_X)
    return ((offsets - reflected) ** 2).sum()


def closeness_term(offsets: torch.Tensor) -> torch.Tensor:
    """``sum_i ||D_i||^2`` (E_var): keeps the shape close to the body. Scalar, m^2."""
    check_tensor("offsets", offsets, (None, 3))
    return (offsets**2).sum()
