"""The built-in plugins (see :mod:`edgevision.deploy.plugins`); importing a module registers its plugins."""

from edgevision.deploy.plugin_ops import deform_roi_pool as _deform_roi_pool  # noqa: F401  (DeformRoIPool, DeformPSRoIPool)
