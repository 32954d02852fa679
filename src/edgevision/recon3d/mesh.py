"""Mesh connectivity: edges and the uniform graph Laplacian."""

from __future__ import annotations

import torch


def edges(faces: torch.Tensor) -> torch.Tensor:
    """The ``(E, 2)`` undirected edges (smaller index first, each once) of ``(F, 3)`` triangles."""
    pairs = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    return torch.unique(pairs.sort(dim=1).values, dim=0)


def uniform_laplacian(
    faces: torch.Tensor, num_vertices: int, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """The sparse ``(V, V)`` uniform Laplacian ``L = I - D^-1 A``: ``(L x)_i`` is ``x_i`` minus
    the mean of its neighbours. Its rows sum to 0, so ``L`` of a translation is 0. A vertex on no
    edge (a decimation leftover) gets a zero row."""
    pairs = edges(faces)
    rows = torch.cat([pairs[:, 0], pairs[:, 1]])
    cols = torch.cat([pairs[:, 1], pairs[:, 0]])
    degree = torch.bincount(rows, minlength=num_vertices).to(dtype)
    isolated = degree == 0
    neighbour = -1 / degree[rows]
    diagonal = torch.arange(num_vertices)
    indices = torch.stack([torch.cat([rows, diagonal]), torch.cat([cols, diagonal])])
    values = torch.cat([neighbour, (~isolated).to(dtype)])
    shape = (num_vertices, num_vertices)
    return torch.sparse_coo_tensor(indices, values, shape, check_invariants=True).coalesce()


def diffuse(values: torch.Tensor, laplacian: torch.Tensor, steps: int) -> torch.Tensor:
    """``steps`` explicit heat-diffusion steps ``x <- x - L x / 2`` of per-vertex ``values``
    ``(V, C)`` over the mesh of the uniform ``laplacian``: each step moves every vertex halfway to
    its neighbours' mean, so features shrink to about ``edge * sqrt(steps / 2)`` along the
    surface (never across a gap, as a Euclidean blur would: an arm by the hip stays apart)."""
    for _ in range(steps):
        values = values - 0.5 * torch.sparse.mm(laplacian, values)
    return values


def mean_edge_length(vertices: torch.Tensor, faces: torch.Tensor) -> float:
    """The mean length of the mesh's edges, in the vertices' unit."""
    pairs = edges(faces)
    return float((vertices[pairs[:, 0]] - vertices[pairs[:, 1]]).norm(dim=1).mean())
