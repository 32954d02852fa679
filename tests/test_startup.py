"""Start-up stays cheap: ``import edgevision`` and the CLI module load no torch, and the public
API loads the deployment stack only for plan files. Each check runs in a fresh interpreter (this
one has imported everything already) and asserts what is imported, not how long it takes
(benchmarks/startup.py times it)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import edgevision

HEAVY = ("torch", "torchvision", "onnx", "onnxruntime", "onnxscript", "cv2", "numpy", "matplotlib")
DEPLOY_STACK = ("onnx", "onnxruntime", "onnxscript", "edgevision.deploy")


def modules_after(code: str) -> set[str]:
    """The heavy or deploy modules present in ``sys.modules`` after running ``code`` afresh."""
    watched = sorted(set(HEAVY + DEPLOY_STACK))
    script = f"{code}\nimport json, sys\nprint(json.dumps([m for m in {watched!r} if m in sys.modules]))"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return set(json.loads(done.stdout.splitlines()[-1]))


def test_import_edgevision_loads_no_torch_and_no_deploy_stack() -> None:
    assert modules_after("import edgevision") == set()


def test_cli_module_loads_no_torch() -> None:
    assert modules_after("import edgevision.cli") == set()


def test_public_names_load_without_the_deploy_stack() -> None:
    names = "\n".join(f"edgevision.{name}" for name in edgevision.__all__)
    loaded = modules_after(f"import edgevision\n{names}")
    assert "torch" in loaded  # the names were really resolved
    assert not loaded & set(DEPLOY_STACK), sorted(loaded & set(DEPLOY_STACK))


def test_public_names_resolve_to_their_definitions() -> None:
    from edgevision.api import load_detector
    from edgevision.detection.detector import Detector
    from edgevision.models import create_model
    from edgevision.recognition.recognizer import load_recognizer

    assert edgevision.load_detector is load_detector
    assert edgevision.load_recognizer is load_recognizer
    assert edgevision.Detector is Detector
    assert edgevision.create_model is create_model
    assert set(edgevision.__all__) <= set(dir(edgevision))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        edgevision.nope  # noqa: B018
