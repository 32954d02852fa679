"""Errors raised at edgevision's boundaries.

Every public function that takes a path, an image or a name validates it and raises a subclass of
:class:`EdgeVisionError` with a one-line message; the CLI prints that message and exits with 2.
"""

from __future__ import annotations


class EdgeVisionError(Exception):
    """Base class of every error edgevision raises on bad input."""


class InputFileError(EdgeVisionError):
    """A path is missing, unreadable, empty, or not of the expected kind (image, video, folder)."""


class ImageDecodeError(InputFileError):
    """A file exists but cannot be decoded as an image (not an image, truncated, corrupt)."""


class UnknownModelError(EdgeVisionError):
    """A model name is not in the registry."""


class WeightsError(EdgeVisionError):
    """A weights file is missing, unreadable, or does not fit the model's architecture."""


class ShapeError(EdgeVisionError, ValueError):
    """A tensor or array does not have the expected shape."""


class ConfigError(EdgeVisionError, ValueError):
    """An option or parameter is out of its valid range."""


class DatasetError(EdgeVisionError):
    """A data set's files are missing or malformed."""


class MemoryPlanError(EdgeVisionError):
    """Activation memory cannot be planned: a tensor's size is unknown, or the graph is malformed."""


class PlanFileError(InputFileError):
    """A deployment plan file is missing, not a plan, truncated, or edited (a member's sha256 differs)."""


class PlanVersionError(PlanFileError):
    """A plan file has a format version this edgevision does not read."""


class PlanSignatureError(PlanFileError):
    """A plan read with a key is unsigned, or its signature does not verify with that key."""


class UnknownPluginError(EdgeVisionError):
    """A plugin (domain, op type, version) of the engine is not in the registry."""


class GalleryError(EdgeVisionError):
    """A face gallery file is not a gallery, was made by another model, or has no such name."""


class TrainingDivergedError(EdgeVisionError):
    """Training produced a NaN or inf loss or weights; nothing non-finite was saved."""


class NoFaceError(EdgeVisionError):
    """An image in which a face was needed (to embed it, to verify it) has none."""


class MissingDependencyError(EdgeVisionError):
    """An optional dependency a feature needs is not installed (the message names the extra)."""


class EdgeVisionWarning(UserWarning):
    """Work that went on with less than was asked (e.g. a pyramid scale skipped); the CLI prints
    it as one ``warning:`` line."""
