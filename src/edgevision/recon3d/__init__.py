"""3D people from video (Alldieck et al., "Video Based Reconstruction of 3D People Models",
CVPR 2018) on an open body: the CC0 MakeHuman mesh, rig and skinning weights.

Modules: ``makehuman`` (reading the assets), ``skinning`` (axis-angle, kinematic chain, linear
blend skinning), ``body`` (``BodyModel``: shape space, offsets, posing), ``decimate`` (a
symmetric vertex clustering that keeps weights and the mirror map), ``mesh`` (edges, Laplacian),
``rays`` (Plücker rays, unposing, matching, Geman-McClure), ``regularizers`` (Laplacian,
symmetry, closeness terms of the consensus shape, Sec. 3.3).

Conventions: metres, radians; the body's frame is MakeHuman's (y up, x towards the body's left,
z out of its front).
"""
