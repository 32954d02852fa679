"""Face alignment: five landmarks onto the standard 112x112 ArcFace template by a similarity
transform (rotation, uniform scale, translation; no shear, no reflection).

Landmark order everywhere: the eye on the image's left, the eye on the image's right, the nose
tip, the mouth corner on the image's left, the one on the image's right (InsightFace's and
YuNet's order), ``(5, 2)`` float pixels ``(x, y)``.
"""

from __future__ import annotations

import cv2
import numpy as np

from edgevision.errors import ShapeError

ALIGNED_SIZE = 112  # the aligned crop is ALIGNED_SIZE x ALIGNED_SIZE pixels (ArcFace's input)

# The standard ArcFace template: where the five points land in the 112x112 crop, pixels.
ARCFACE_TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float32,
)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The least-squares similarity transform taking ``src`` onto ``dst`` (Umeyama, 1991).

    Args:
        src: ``(K, 2)`` points, K >= 2, not all equal.
        dst: ``(K, 2)`` points.

    Returns:
        ``(2, 3)`` float64 matrix ``M`` with ``dst ~ M @ [x, y, 1]``.
    """
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    if src.ndim != 2 or src.shape[1] != 2 or src.shape != dst.shape or len(src) < 2:
        raise ShapeError(
            f"similarity_transform takes two (K, 2) point sets, K >= 2; got {src.shape} and {dst.shape}"
        )
    if not (np.isfinite(src).all() and np.isfinite(dst).all()):
        raise ShapeError("similarity_transform: the points are not all finite")
    src_mean, dst_mean = src.mean(0), dst.mean(0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    src_var = (src_c**2).sum(1).mean()
    if src_var == 0:
        raise ShapeError("similarity_transform: the source points all coincide")
    u, s, vt = np.linalg.svd(dst_c.T @ src_c / len(src))
    # A reflection is not a similarity: flip the weakest axis when the best rotation would mirror.
    d = np.array([1.0, np.sign(np.linalg.det(u) * np.linalg.det(vt)) or 1.0])
    rotation = u @ np.diag(d) @ vt
    scale = (s * d).sum() / src_var
    matrix = np.empty((2, 3))
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = dst_mean - scale * rotation @ src_mean
    return matrix


def as_bgr(image: np.ndarray) -> np.ndarray:
    """An ``(H, W)`` or ``(H, W, 1)`` grey image replicated to ``(H, W, 3)``; BGR passes through."""
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ShapeError(f"a face image must be (H, W), (H, W, 1) or (H, W, 3); got {image.shape}")
    return image


def align_face(image: np.ndarray, landmarks: np.ndarray, size: int = ALIGNED_SIZE) -> np.ndarray:
    """Warp a face onto the ArcFace template.

    Args:
        image: ``(H, W, 3)`` uint8 BGR, or grey ``(H, W)``.
        landmarks: ``(5, 2)`` pixels of ``image``, in the module's order.
        size: the crop's side; the template scales with it (112 is ArcFace's).

    Returns:
        ``(size, size, 3)`` uint8 BGR; pixels outside the image repeat its border.
    """
    landmarks = np.asarray(landmarks, np.float64)
    if landmarks.shape != (5, 2):
        raise ShapeError(f"align_face takes (5, 2) landmarks, got {landmarks.shape}")
    matrix = similarity_transform(landmarks, ARCFACE_TEMPLATE * (size / ALIGNED_SIZE))
    return cv2.warpAffine(
        as_bgr(image), matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )


def face_crop_input(image: np.ndarray, size: int = ALIGNED_SIZE) -> np.ndarray:
    """An image that is already a face crop (ORL's 92x112 heads), without detection: its longer
    side scaled to ``size``, then the shorter side padded, centred, by repeating the border, so
    the face keeps its aspect ratio (a 92x112 ORL face puts its eyes about where the template does).

    Returns:
        ``(size, size, 3)`` uint8 BGR.
    """
    image = as_bgr(image)
    height, width = image.shape[:2]
    if min(height, width) < 1:
        raise ShapeError(f"a face crop must not be empty; got {image.shape}")
    ratio = size / max(height, width)
    new_w, new_h = max(1, round(width * ratio)), max(1, round(height * ratio))
    interpolation = cv2.INTER_AREA if ratio < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(image, (new_w, new_h), interpolation=interpolation)
    left, top = (size - new_w) // 2, (size - new_h) // 2
    return cv2.copyMakeBorder(
        resized, top, size - new_h - top, left, size - new_w - left, cv2.BORDER_REPLICATE
    )
