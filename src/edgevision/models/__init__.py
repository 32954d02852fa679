"""Whole networks and the registry (``create_model``, ``list_models``)."""

from edgevision.models import faceboxes as _faceboxes  # noqa: F401  (registers "faceboxes")
from edgevision.models._registry import create_model, list_models, register_model

__all__ = ["create_model", "list_models", "register_model"]
