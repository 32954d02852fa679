"""Whole networks and the registry (``create_model``, ``list_models``)."""

# Importing a model module registers its builders.
from edgevision.models import amoebanet as _amoebanet  # noqa: F401  (registers "amoebanet_a_cifar|mobile")
from edgevision.models import faceboxes as _faceboxes  # noqa: F401  (registers "faceboxes")
from edgevision.models import mobilefacenet as _mobilefacenet  # noqa: F401  (registers "mobilefacenet")
from edgevision.models import mobilenetv2 as _mobilenetv2  # noqa: F401  (registers "mobilenet_v2")
from edgevision.models import nasnet as _nasnet  # noqa: F401  (registers "nasnet", "nasnet_a_mobile|cifar")
from edgevision.models import resnet as _resnet  # noqa: F401  (registers "resnet50_dcn")
from edgevision.models import rfcn as _rfcn  # noqa: F401  (registers "rfcn_resnet50_dcn")
from edgevision.models import ssdlite as _ssdlite  # noqa: F401  (registers "ssdlite_mobilenet_v2")
from edgevision.models import tinyfaces as _tinyfaces  # noqa: F401  (registers "tinyfaces" and its ablations)
from edgevision.models._registry import (
    DETECTION,
    RECOGNITION,
    ModelInfo,
    check_task,
    create_model,
    default_model,
    list_models,
    model_info,
    register_model,
    unregister_model,
    weights_card,
    weights_options,
)

__all__ = [
    "DETECTION",
    "RECOGNITION",
    "ModelInfo",
    "check_task",
    "create_model",
    "default_model",
    "list_models",
    "model_info",
    "register_model",
    "unregister_model",
    "weights_card",
    "weights_options",
]
