"""3D people from video (Alldieck et al., "Video Based Reconstruction of 3D People Models",
CVPR 2018) on an open body: the CC0 MakeHuman mesh, rig and skinning weights.

Modules: ``makehuman`` (reading the assets), ``skinning`` (axis-angle, kinematic chain, linear
blend skinning), ``body`` (``BodyModel``: shape space, offsets, posing), ``decimate`` (a
symmetric vertex clustering that keeps weights and the mirror map), ``mesh`` (edges, Laplacian),
``rays`` (Plücker rays, unposing, matching, Geman-McClure), ``regularizers`` (Laplacian,
symmetry, closeness terms of the consensus shape, Sec. 3.3), ``camera`` (the pinhole camera and
its JSON file), ``render`` (a numpy z-buffer rasteriser: mask, depth, faces, barycentrics,
colour), ``silhouette`` (the boundary pixels back-projected to rays), ``shading`` (normals,
Lambert), ``turntable`` (pictures of a mesh, error colours), ``refine`` (per-frame offsets on one frame's
silhouette, Sec. 3.4), ``texture`` (the texture stitched from the frames, Sec. 3.4), ``obj_io``
(the OBJ with its material and texture, written all or none; a reader), ``keypoints`` (the 2D
keypoint layouts the body predicts, the keypoint file), ``silhouette_fit`` (the differentiable
chamfer of a mask and the projected model's contour), ``pose`` (step 1: per-frame pose, shape
and scale, Sec. 3.1), ``synthetic`` (a turning person with known ground truth, written as the
CLI's input files), ``synthetic_paint`` (its known paint and background), ``consensus`` (step
2, the consensus shape, Sec. 3.3).

Conventions: metres, radians; the body's frame is MakeHuman's (y up, x towards the body's left,
z out of its front); cameras are OpenCV's (x right, y down, z forward, pixel centres at integer
coordinates).
"""
