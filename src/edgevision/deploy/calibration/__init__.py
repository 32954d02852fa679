"""INT8 calibration of an fp32 ONNX graph, TensorRT style:

- :mod:`.collection`: per-tensor ``|x|`` histograms of every float activation, from running the graph
  in ONNX Runtime on a representative set;
- :mod:`.calibrators`: a threshold (``amax``) chosen from each histogram (entropy, minmax,
  percentile, mse), giving each activation its :class:`TensorRange`;
- :mod:`.cache`: the ranges as a calibration cache file, tied to the model;
- :mod:`.images`: the representative set, a folder of images made into network inputs.
"""

from edgevision.deploy.calibration.cache import (
    calibration_cache_bytes,
    load_calibration_cache,
    model_digest,
    save_calibration_cache,
)
from edgevision.deploy.calibration.calibrators import (
    CALIBRATORS,
    INT8_STEPS,
    TensorRange,
    calibrate,
    entropy_amax,
    entropy_divergences,
    minmax_amax,
    mse_amax,
    percentile_amax,
    quantize_expand,
)
from edgevision.deploy.calibration.collection import (
    NUM_BINS,
    Batch,
    TensorStats,
    activation_tensors,
    collect_activation_histograms,
    collect_activation_ranges,
    load_model,
    run_exposed,
)
from edgevision.deploy.calibration.images import (
    ImageBatches,
    ImageFolderBatches,
    image_paths,
    readable_image_paths,
    spread,
)

__all__ = [
    "CALIBRATORS",
    "INT8_STEPS",
    "NUM_BINS",
    "Batch",
    "ImageBatches",
    "ImageFolderBatches",
    "TensorRange",
    "TensorStats",
    "activation_tensors",
    "calibrate",
    "calibration_cache_bytes",
    "collect_activation_histograms",
    "collect_activation_ranges",
    "entropy_amax",
    "entropy_divergences",
    "image_paths",
    "load_calibration_cache",
    "load_model",
    "minmax_amax",
    "model_digest",
    "mse_amax",
    "percentile_amax",
    "quantize_expand",
    "readable_image_paths",
    "run_exposed",
    "save_calibration_cache",
    "spread",
]
