"""The detection core shared by every detector: boxes, anchors, coder, matcher, losses,
post-processing and the :class:`Detections` value type."""

from edgevision.detection.detections import Detections

__all__ = ["Detections"]
