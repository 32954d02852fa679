"""Where the real data sets are found."""

from __future__ import annotations

import os
from pathlib import Path


def default_data_dir(project_root: Path | None = None) -> Path:
    """``$EDGEVISION_DATA`` if set, else ``../shared/data`` beside ``project_root`` (default: the
    current folder), where the project's machines keep the shared data sets."""
    if "EDGEVISION_DATA" in os.environ:
        return Path(os.environ["EDGEVISION_DATA"])
    return (project_root or Path.cwd()).parent / "shared" / "data"
