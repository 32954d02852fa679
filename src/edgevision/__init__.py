"""edgevision: efficient vision on CPUs and embedded devices."""

from edgevision.api import load_detector
from edgevision.detection.detections import Detections
from edgevision.detection.detector import Detector
from edgevision.models import create_model, list_models

__all__ = ["Detections", "Detector", "create_model", "list_models", "load_detector"]
__version__ = "0.1.0"
