"""The engine builder: a trained model in, a plan file out (TensorRT's builder workflow).

:func:`build_engine` checks everything it can before any work (the options, the backend's package,
the timing cache, every calibration image), then runs the stages of :mod:`.stages` in order:

1. import: the model as a raw fp32 ONNX graph (:mod:`edgevision.deploy.importer`);
2. optimise: the graph passes (:mod:`edgevision.deploy.passes`), and pixel input;
3. calibrate: int8 activation ranges (:mod:`edgevision.deploy.calibration`);
4. Q/DQ policy: how the int8 graph is quantised for the target backend, with bias correction
   and the per-layer accuracy gate (:mod:`edgevision.deploy.quantize`);
5. select: the requested tactic's model, or the tuner's choice (:mod:`edgevision.deploy.tuning`);
6. finalise: memory plan (:mod:`edgevision.deploy.memory`), plugins, the plan
   (:mod:`edgevision.deploy.plan`).

Stages 1-5 need no backend package (:func:`build_model`): a TensorRT plan's model is made and
checkable on a machine without TensorRT. Each stage's log lines are kept in the
:class:`BuildResult`, which ``edgevision build --report`` prints.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edgevision.deploy.backends import backend_version
from edgevision.deploy.builder.options import BuildOptions
from edgevision.deploy.builder.stages import (
    Calibration,
    Finalised,
    Graphs,
    Imported,
    QdqPolicy,
    Selection,
    calibrate_stage,
    finalise,
    import_stage,
    optimise,
    qdq_policy,
    select,
)
from edgevision.deploy.calibration import readable_image_paths
from edgevision.deploy.memory import MemoryReport
from edgevision.deploy.passes import PassReport
from edgevision.deploy.plan import Plan, write_plan
from edgevision.deploy.tuning import TimingCache, TuningResult

Progress = Callable[[str], None]


@dataclass(frozen=True)
class BuiltModel:
    """What stages 1-5 made: each stage's value, the last being the plan's model and tactic."""

    imported: Imported
    graphs: Graphs
    calibration: Calibration | None
    policy: QdqPolicy | None
    selection: Selection

    def logs(self) -> dict[str, tuple[str, ...]]:
        """Stage name -> its log lines, in order (no calibration or Q/DQ policy for float builds)."""
        stages = {
            "import": self.imported,
            "optimise": self.graphs,
            "calibrate": self.calibration,
            "qdq_policy": self.policy,
            "select": self.selection,
        }
        return {name: stage.log for name, stage in stages.items() if stage is not None}


@dataclass(frozen=True)
class BuildResult:
    """What the build wrote and its log, per stage (``logs``: stage name -> lines)."""

    path: Path
    plan: Plan
    passes: tuple[PassReport, ...]
    memory: MemoryReport
    logs: dict[str, tuple[str, ...]]
    tuning: TuningResult | None = None

    def log(self) -> str:
        """The builder log: each stage's name, then its lines indented."""
        return "\n".join(
            f"{name}:\n" + "\n".join(f"  {line}" for line in lines) for name, lines in self.logs.items()
        )


def build_model(
    source: str | Path,
    options: BuildOptions | None = None,
    *,
    weights: str | Path | None = None,
    arch: str | None = None,
    progress: Progress | None = None,
) -> BuiltModel:
    """Stages 1-5 for ``source`` (a registry name, checkpoint or ONNX file): the plan's model and
    tactic, not yet a plan; no backend package is needed.

    Raises:
        EdgeVisionError subclasses with one-line messages: a corrupt timing cache or missing or
        unreadable calibration images (before the import), an unknown model, missing weights, a
        model the options or images do not fit (before the passes).
    """
    options = options or BuildOptions()
    say = progress or (lambda _step: None)
    timing_cache = TimingCache.load(options.timing_cache) if options.tune and options.timing_cache else None
    paths = None
    if options.calibration_dir is not None:
        say("reading calibration images")
        paths = readable_image_paths(options.calibration_dir, options.calibration_images)
    say("importing")
    imported = import_stage(source, options, paths, weights=weights, arch=arch)
    say("optimising")
    graphs = optimise(imported.model, options)
    calibration = policy = None
    if options.precision == "int8":
        say("calibrating")
        calibration = calibrate_stage(graphs, imported.images, options)
        say("choosing the Q/DQ policy")
        policy = qdq_policy(graphs, calibration, imported.images, options)
    say("timing tactics" if options.tune else "building the model")
    selection = select(imported, graphs, policy, options, timing_cache)
    return BuiltModel(imported, graphs, calibration, policy, selection)


def build_engine(
    source: str | Path,
    output: str | Path,
    options: BuildOptions | None = None,
    *,
    weights: str | Path | None = None,
    arch: str | None = None,
    progress: Progress | None = None,
    key: bytes | None = None,
) -> BuildResult:
    """Build ``source`` (a registry name, checkpoint or ONNX file) into the plan file ``output``,
    signed with ``key`` if given (:mod:`edgevision.deploy.plan_signing`): :func:`build_model`, then
    stage 6.

    Raises:
        EdgeVisionError subclasses with one-line messages: a missing optional backend (first), and
        what :func:`build_model` raises; nothing is written then.
    """
    options = options or BuildOptions()
    versions = {name: backend_version(name) for name in {options.backend, *options.tuned_backends}}
    built = build_model(source, options, weights=weights, arch=arch, progress=progress)
    (progress or (lambda _step: None))("writing the plan")
    final: Finalised = finalise(
        built.imported,
        built.graphs,
        built.calibration,
        built.policy,
        built.selection,
        versions[built.selection.tactic.backend],
    )
    path = write_plan(output, final.plan, key=key)
    logs = {**built.logs(), "finalise": (*final.log, f"wrote {path}")}
    return BuildResult(path, final.plan, built.graphs.passes, final.memory, logs, built.selection.tuning)


__all__ = ["BuildOptions", "BuildResult", "BuiltModel", "build_engine", "build_model"]
