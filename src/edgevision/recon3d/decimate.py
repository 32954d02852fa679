"""A left/right symmetric vertex clustering of the body, for fast optimisation on the CPU.

Vertices fall into cubic cells of side ``cell`` metres; the x cell index is rounded about the
mid-plane (``rint(x / cell)``), so a vertex and its mirror image land in mirrored cells, and the
key also holds the vertex's dominant bone (mirrored for the mirror vertex), so that nearby parts
that move apart (the inner thighs, an arm by the hip) are never merged. A cluster's vertex is the
mean of its members; every per-vertex quantity that is linear in the vertices (skinning weights,
shape directions) is averaged the same way, so the decimated body is exactly the cluster means
of the full one in any shape.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgevision.errors import DatasetError
from edgevision.validation import check_number


@dataclass(frozen=True)
class Clustering:
    """labels ``(V,)``: each full vertex's cluster; mirror ``(C,)``: each cluster's mirror
    cluster; faces ``(F', 3)``: the triangles that survive, in cluster indices."""

    labels: np.ndarray
    mirror: np.ndarray
    faces: np.ndarray

    @property
    def count(self) -> int:
        return len(self.mirror)

    def average(self, values: np.ndarray) -> np.ndarray:
        """Per-cluster means of per-vertex ``values`` ``(V, ...)`` -> ``(C, ...)``."""
        sums = np.zeros((self.count, *values.shape[1:]), dtype=np.float64)
        np.add.at(sums, self.labels, values)
        return sums / np.bincount(self.labels, minlength=self.count).reshape(-1, *[1] * (values.ndim - 1))


def cluster_vertices(
    vertices: np.ndarray,
    faces: np.ndarray,
    mirror: np.ndarray,
    dominant_bone: np.ndarray,
    cell: float,
) -> Clustering:
    """Cluster ``(V, 3)`` vertices (metres) of the ``(F, 3)`` mesh whose ``(V,)`` mirror map
    is exact (mirror positions are x-reflections); ``dominant_bone`` ``(V,)`` keeps parts apart.
    A cluster left on no triangle (a fingertip smaller than a cell) joins its nearest neighbour
    cluster, and its mirror image the mirror of that. A :class:`DatasetError` when clusters do
    not mirror onto clusters (an asymmetric mesh or asymmetric weights)."""
    check_number("cell", cell, 0.0, 1.0, low_open=True)
    x_cell = np.rint(vertices[:, 0] / cell).astype(np.int64)
    yz_cells = np.floor(vertices[:, 1:] / cell).astype(np.int64)
    keys = np.column_stack([x_cell, yz_cells, dominant_bone])
    labels = np.unique(keys, axis=0, return_inverse=True)[1].reshape(-1)
    labels = _absorb_faceless(labels, vertices, faces, _cluster_mirror(labels, mirror))
    return Clustering(
        labels=labels, mirror=_cluster_mirror(labels, mirror), faces=_cluster_faces(labels, faces)
    )


def _cluster_mirror(labels: np.ndarray, mirror: np.ndarray) -> np.ndarray:
    # A vertex's mirror has the key (-x, y, z, mirrored bone): the mirror cluster is its cluster.
    cluster_mirror = np.empty(int(labels.max()) + 1, dtype=np.int64)
    cluster_mirror[labels] = labels[mirror]
    if not np.array_equal(cluster_mirror[labels], labels[mirror]):
        raise DatasetError("the body's mirror map does not map clusters onto clusters: asymmetric body")
    return cluster_mirror


def _cluster_faces(labels: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """The triangles that keep three distinct clusters, each vertex set once (in first order)."""
    triangles = labels[faces]
    keep = (triangles[:, 0] != triangles[:, 1]) & (triangles[:, 1] != triangles[:, 2])
    triangles = triangles[keep & (triangles[:, 0] != triangles[:, 2])]
    _, first = np.unique(np.sort(triangles, axis=1), axis=0, return_index=True)
    return triangles[np.sort(first)]


def _absorb_faceless(
    labels: np.ndarray, vertices: np.ndarray, faces: np.ndarray, cluster_mirror: np.ndarray
) -> np.ndarray:
    """``labels`` with each faceless cluster merged into the mesh-adjacent cluster whose centre
    is nearest, and renumbered 0..C'-1. A faceless cluster on the mid-plane whose nearest
    neighbour is not would break the symmetry: it stays as it is."""
    count = len(cluster_mirror)
    centres = np.zeros((count, 3))
    np.add.at(centres, labels, vertices)
    centres /= np.bincount(labels, minlength=count)[:, None]
    faceless = np.setdiff1d(np.arange(count), _cluster_faces(labels, faces))
    edges = labels[np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])]
    target = np.arange(count)
    for cluster in faceless[faceless <= cluster_mirror[faceless]]:  # one of each mirror pair
        neighbours = np.setdiff1d(edges[edges[:, 0] == cluster, 1], faceless)
        if len(neighbours) == 0:
            continue
        nearest = neighbours[np.argmin(np.linalg.norm(centres[neighbours] - centres[cluster], axis=1))]
        if cluster == cluster_mirror[cluster] and nearest != cluster_mirror[nearest]:
            continue
        target[cluster], target[cluster_mirror[cluster]] = nearest, cluster_mirror[nearest]
    return np.unique(target[labels], return_inverse=True)[1].reshape(-1)
