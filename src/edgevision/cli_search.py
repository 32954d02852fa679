"""``edgevision search`` (one architecture search, resumable) and ``edgevision search-report``
(best-so-far curves of several searches, one line per algorithm over its seeds).

A search writes into ``--out``: ``trials.jsonl`` (the durable trial log; running the same command
again resumes it), ``best_genotype.json``, ``best_so_far.png`` and, with ``--latency-target``, the
accuracy / latency front (``front.json``, ``pareto.png``) with each front member's latency
measured by our engine, and ``chosen_genotype.json``: the best reward whose measured latency is
within the target.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from edgevision.cli_media import progress_bar
from edgevision.errors import ConfigError

if TYPE_CHECKING:
    from edgevision.search.trial_log import TrialRecord

err_console = Console(stderr=True)

ALGOS_HELP = "evolution (aging), evolution-nonaging, rl (LSTM controller + PPO) or random"


def search(
    space: Annotated[str, typer.Option(help="search space: nasnet or amoeba")] = "nasnet",
    algo: Annotated[str, typer.Option(help=ALGOS_HELP)] = "evolution",
    budget: Annotated[int, typer.Option(help="children to evaluate (failed ones count)")] = 200,
    workers: Annotated[int, typer.Option(help="trials in flight at once (Ray tasks, one thread each)")] = 1,
    latency_target: Annotated[
        float | None,
        typer.Option(help="ms: reward accuracy x (latency / target)^w with the predicted int8 latency"),
    ] = None,
    latency_weight: Annotated[float, typer.Option(help="w of the latency reward (MnasNet: -0.07)")] = -0.07,
    latency_model: Annotated[
        Path | None,
        typer.Option(
            help="predict each child's latency with this fitted model (benchmarks/search_latency.py) "
            "instead of measuring its int8 plan with the engine (~10 s a child)"
        ),
    ] = None,
    address: Annotated[
        str | None, typer.Option(help="join this Ray cluster (host:port, ray://host:port or auto)")
    ] = None,
    seed: Annotated[int, typer.Option(help="the search's seed (its choices and its trials' seeds)")] = 0,
    population: Annotated[int, typer.Option(help="evolution: population P")] = 50,
    sample: Annotated[int, typer.Option(help="evolution: sample S (the parent is its best)")] = 10,
    rl_batch: Annotated[int, typer.Option(help="rl: children per PPO update")] = 20,
    trial_timeout: Annotated[
        float, typer.Option(help="s: a trial running longer is logged as failed")
    ] = 600.0,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="run folder (default: out/search/SPACE-ALGO-seedS); rerun to resume"
        ),
    ] = None,
    data: Annotated[Path | None, typer.Option(help="WIDER FACE root (default: DATA/widerface)")] = None,
    cache: Annotated[Path, typer.Option(help="where the face / non-face patch sets are cached")] = Path(
        "out/cache"
    ),
    epochs: Annotated[int | None, typer.Option(help="proxy task: epochs per child [default: 3]")] = None,
    train_patches: Annotated[
        int | None, typer.Option(help="proxy task: training patches per child [default: 256]")
    ] = None,
    val_patches: Annotated[
        int | None, typer.Option(help="proxy task: validation patches [default: 512]")
    ] = None,
) -> None:
    """Search a cell space for face / non-face patch classifiers (the proxy task): aging
    evolution, an RL controller or random search, trials on Ray, a durable resumable log."""
    from edgevision.data.face_patches import cached_face_patches
    from edgevision.data.io import check_output_dir
    from edgevision.data.paths import default_data_dir
    from edgevision.search.algorithms import make_strategy
    from edgevision.search.cell_space import get_space
    from edgevision.search.experiment import ChildEvaluation, Objective
    from edgevision.search.proxy_task import ProxyTask
    from edgevision.search.runner import check_address, import_ray, run_search
    from edgevision.search.trial_log import check_same_search, read_trial_log
    from edgevision.validation import check_integer, check_number

    # Everything is checked before the patch sets are built or Ray starts.
    cell_space = get_space(space)
    options: dict[str, Any] = {"evolution": {"population": population, "sample": sample}}
    options["evolution-nonaging"] = options["evolution"]
    options["rl"] = {"batch": rl_batch}
    strategy = make_strategy(algo, cell_space, seed, **options.get(algo, {}))
    check_integer("--budget", budget, 1)
    check_integer("--workers", workers, 1)
    check_number("--trial-timeout", trial_timeout, 0.0, 7 * 24 * 3600.0, low_open=True)
    for name, value, low in (
        ("--epochs", epochs, 1),
        ("--train-patches", train_patches, 2),
        ("--val-patches", val_patches, 2),
    ):
        if value is not None:
            check_integer(name, value, low)
    objective = Objective(latency_target, latency_weight)
    predictor = None
    if latency_model is not None:
        if latency_target is None:
            raise ConfigError("--latency-model needs --latency-target")
        from edgevision.search.latency import LatencyModel

        predictor = LatencyModel.load(latency_model)  # a damaged model fails now, not after the patches
    measure_latency = latency_target is not None and predictor is None
    if address is not None:
        check_address(address)
    out = out or Path("out/search") / f"{space}-{algo}-seed{seed}"
    check_output_dir(out, "--out")
    check_output_dir(cache, "--cache")
    data = data or default_data_dir() / "widerface"
    config: dict[str, Any] = {
        "space": space,
        "algo": algo,
        "seed": seed,
        "budget": budget,
        "workers": workers,
        "address": address,
        "trial_timeout_s": trial_timeout,
        "strategy": options.get(algo, {}),
        "objective": {
            **objective.describe(),
            **(
                {"latency": "measured" if measure_latency else f"predicted by {latency_model}"}
                if latency_target
                else {}
            ),
        },
    }
    import_ray()  # a missing Ray, or a log of another search, fails now, not after the patches
    if (out / "trials.jsonl").is_file():
        check_same_search(
            out / "trials.jsonl", read_trial_log(out / "trials.jsonl").config, config, frozenset({"task"})
        )

    train_file = cached_face_patches(data, "train", cache)
    val_file = cached_face_patches(data, "val", cache)
    given = {"epochs": epochs, "train_size": train_patches, "val_size": val_patches}
    task = ProxyTask(
        train_file, val_file, **{key: value for key, value in given.items() if value is not None}
    )
    evaluate = ChildEvaluation(task, predictor, measure_latency)
    # The proxy task's settings: a resumed run must train its children as the first did.
    config["task"] = {
        key: str(value) if isinstance(value, Path) else value
        for key, value in vars(task).items()
        if not key.startswith("_")
    }
    out.mkdir(parents=True, exist_ok=True)
    with progress_bar(err_console) as bar:
        bar_id = bar.add_task(f"{space} {algo}", total=budget)

        def progress(done: int, total: int, record: TrialRecord | None, best: TrialRecord | None) -> None:
            text = f"{space} {algo}"
            if best is not None:
                text += f"  best reward {best.reward:.4f}"
            bar.update(bar_id, completed=done, total=total, description=text)

        records = run_search(
            cell_space,
            strategy,
            evaluate,
            budget=budget,
            log_path=out / "trials.jsonl",
            config=config,
            workers=workers,
            address=address,
            trial_timeout_s=trial_timeout,
            reward=objective.reward,
            progress=progress,
        )
    _report_run(records, out, space, algo, objective, cell_space, measure_latency)


def _report_run(
    records: list[TrialRecord],
    out: Path,
    space: str,
    algo: str,
    objective: Any,
    cell_space: Any,
    measured_in_trials: bool,
) -> None:
    """Write the run's best genotype, its best-so-far plot and, with a latency target, its
    measured front; print a summary."""
    from edgevision.data.io import atomic_write
    from edgevision.search.genotype_file import save_genotype
    from edgevision.search.plots import plot_best_so_far
    from edgevision.search.summary import best_so_far

    ok = [record for record in records if record.status == "ok"]
    failed = len(records) - len(ok)
    if not ok:
        raise ConfigError(f"every one of the {len(records)} trials failed; the first: {records[0].error}")
    best = max(ok, key=lambda record: record.reward)
    save_genotype(cell_space.from_json(best.arch), out / "best_genotype.json", cell_space)
    plot_best_so_far(
        {algo: [best_so_far(records, "accuracy")]},
        out / "best_so_far.png",
        "best validation accuracy",
        f"{space} space, {algo}",
    )
    summary: dict[str, Any] = {
        "trials": len(records),
        "failed": failed,
        "best": {"index": best.index, "reward": best.reward, **best.metrics},
    }
    typer.echo(
        f"{len(records)} trials ({failed} failed); best #{best.index}: reward {best.reward:.4f}, "
        f"accuracy {best.metrics['accuracy']:.4f}; genotype: {out / 'best_genotype.json'}"
    )
    if objective.target_ms is not None:
        summary["front"] = _measure_front(ok, out, objective, cell_space, measured_in_trials)
    with atomic_write(out / "summary.json", "w") as handle:
        json.dump(summary, handle, indent=2)


def _measure_front(
    ok: list[TrialRecord], out: Path, objective: Any, cell_space: Any, measured_in_trials: bool
) -> list[dict[str, Any]]:
    """The accuracy / latency front of the trials, each member's latency measured with our engine
    (already, when the trials measured it); the front's plot, and the chosen genotype: the best
    reward whose measured latency is within the target. A member whose measurement fails is kept
    with its error and never chosen."""
    from edgevision.data.io import atomic_write
    from edgevision.errors import EdgeVisionError
    from edgevision.search.genotype_file import save_genotype
    from edgevision.search.latency import measure_latency_ms
    from edgevision.search.objective import pareto_front
    from edgevision.search.plots import plot_pareto

    front = [ok[i] for i in pareto_front([(r.metrics["accuracy"], r.metrics["latency_ms"]) for r in ok])]
    members = []
    with progress_bar(err_console) as bar:
        bar_id = bar.add_task("measuring the front's latency (int8 plans)", total=len(front))
        for record in front:
            member = {"index": record.index, "accuracy": record.metrics["accuracy"], "genotype": record.arch}
            if measured_in_trials:
                member["measured_ms"] = record.metrics["latency_ms"]
            else:
                member["predicted_ms"] = record.metrics["latency_ms"]
                try:
                    member["measured_ms"] = measure_latency_ms(cell_space.from_json(record.arch))
                except (EdgeVisionError, RuntimeError, ValueError) as error:  # ONNX / ORT failures
                    member["measured_ms"], member["error"] = None, str(error).splitlines()[0]
            if member["measured_ms"] is not None:
                measured = {"accuracy": member["accuracy"], "latency_ms": member["measured_ms"]}
                member["reward"] = objective.reward(measured)
            members.append(member)
            bar.advance(bar_id)
    timed = [m for m in members if m["measured_ms"] is not None]
    plot_pareto(
        [(r.metrics["accuracy"], r.metrics["latency_ms"]) for r in ok],
        [(m["accuracy"], m["measured_ms"]) for m in timed],
        objective.target_ms,
        out / "pareto.png",
        "measured" if measured_in_trials else "predicted",
    )
    with atomic_write(out / "front.json", "w") as handle:
        json.dump(members, handle, indent=2)
    within = [m for m in timed if m["measured_ms"] <= objective.target_ms]
    if not within:
        typer.echo(f"no front member measured within {objective.target_ms} ms; front: {out / 'front.json'}")
        return members
    chosen = max(within, key=lambda m: m["reward"])
    save_genotype(cell_space.from_json(chosen["genotype"]), out / "chosen_genotype.json", cell_space)
    typer.echo(
        f"chosen #{chosen['index']}: accuracy {chosen['accuracy']:.4f} at {chosen['measured_ms']:.3f} ms "
        f"measured (target {objective.target_ms}); genotype: {out / 'chosen_genotype.json'}; "
        f"front: {out / 'pareto.png'}"
    )
    return members


def search_report(
    runs: Annotated[list[Path], typer.Argument(help="search run folders (each with its trials.jsonl)")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="the best-so-far figure (.png, .pdf or .svg)")
    ] = Path("out/search/best_so_far.png"),
    checkpoints: Annotated[
        str, typer.Option(help="models evaluated at which the table reports")
    ] = "25,50,100,200",
) -> None:
    """Compare searches: mean and spread over seeds of the best-so-far validation accuracy
    against models evaluated, one line per algorithm (the runs' logs name them)."""
    from rich.table import Table

    from edgevision.data.io import check_output_file
    from edgevision.evaluation.plots import FORMATS
    from edgevision.search.plots import plot_best_so_far
    from edgevision.search.summary import best_so_far, read_runs

    if out.suffix.lower().lstrip(".") not in FORMATS:
        raise ConfigError(f"--out must end in one of .{', .'.join(FORMATS)}, got {out.name!r}")
    try:
        points = sorted({int(text) for text in checkpoints.split(",") if text.strip()})
    except ValueError:
        raise ConfigError(
            f"--checkpoints must be comma-separated counts, e.g. 50,100; got {checkpoints!r}"
        ) from None
    if not points or points[0] < 1:
        raise ConfigError(f"--checkpoints must be positive counts, got {checkpoints!r}")
    check_output_file(out, "--out")
    config, groups = read_runs(runs)  # algorithm -> [records per seed], checked comparable
    # A latency objective's runs are compared by what they maximised, the reward.
    latency = "target_ms" in config.get("objective", {})
    metric, label = ("reward", "best reward") if latency else ("accuracy", "best validation accuracy")
    curves = {algo: [best_so_far(records, metric) for records in seeds] for algo, seeds in groups.items()}
    plot_best_so_far(curves, out, label, "best-so-far over seeds (mean, min-max)")
    table = Table(title=f"{label} after N models (mean over seeds, min-max)")
    table.add_column("algorithm")
    table.add_column("seeds", justify="right")
    usable = [n for n in points if all(n <= len(c[0]) for c in curves.values())]
    if len(usable) < len(points):
        err_console.print(f"checkpoints past the shortest run left out: {sorted(set(points) - set(usable))}")
    for n in usable:
        table.add_column(f"N={n}", justify="right")
    for algo, seed_curves in curves.items():
        cells = []
        for n in usable:
            values = [curve[n - 1] for curve in seed_curves]
            cells.append(f"{sum(values) / len(values):.4f} ({min(values):.3f}-{max(values):.3f})")
        table.add_row(algo, str(len(seed_curves)), *cells)
    Console().print(table)
    typer.echo(f"figure: {out}")


def search_train(
    genotype: Annotated[
        Path, typer.Argument(help="a genotype file (.json), e.g. a search's best_genotype.json")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="folder for the weights and result.json")],
    space: Annotated[str | None, typer.Option(help="refuse ops outside this space (nasnet, amoeba)")] = None,
    cells: Annotated[int, typer.Option(help="N: normal cells per stack")] = 2,
    filters: Annotated[int, typer.Option(help="F: filters of the first stack")] = 16,
    epochs: Annotated[int, typer.Option(help="epochs over the training patches")] = 10,
    input_size: Annotated[int, typer.Option(help="side the 32x32 patches are resized to")] = 32,
    seed: Annotated[int, typer.Option(help="initialisation and batch order")] = 0,
    data: Annotated[Path | None, typer.Option(help="WIDER FACE root (default: DATA/widerface)")] = None,
    cache: Annotated[Path, typer.Option(help="where the face / non-face patch sets are cached")] = Path(
        "out/cache"
    ),
) -> None:
    """Train a genotype as a full model (``create_model("nasnet", genotype=...)`` with N cells and
    F filters) on every face / non-face training patch; report its validation accuracy."""
    from edgevision.data.face_patches import cached_face_patches
    from edgevision.data.io import atomic_write, check_output_dir
    from edgevision.data.paths import default_data_dir
    from edgevision.models.checkpoint import save_checkpoint
    from edgevision.search.cell_space import get_space
    from edgevision.search.genotype_file import load_genotype
    from edgevision.search.proxy_task import ProxyTask
    from edgevision.validation import check_integer

    cell_space = get_space(space) if space is not None else None
    parsed = load_genotype(genotype, cell_space)
    check_integer("--cells", cells, 1, 12)
    check_integer("--filters", filters, 2, 512)
    check_integer("--epochs", epochs, 1, 10_000)
    check_integer("--input-size", input_size, 8, 32)
    check_integer("--seed", seed, 0)
    check_output_dir(out, "--out")
    data = data or default_data_dir() / "widerface"
    train_file = cached_face_patches(data, "train", cache)
    val_file = cached_face_patches(data, "val", cache)
    task = ProxyTask(
        train_file,
        val_file,
        epochs=epochs,
        train_size=None,
        val_size=None,
        input_size=input_size,
        cells=cells,
        filters=filters,
    )
    with progress_bar(err_console) as bar:
        bar_id = bar.add_task(
            f"training {genotype.name}: N={cells}, F={filters}, {epochs} epochs", total=None
        )
        model, metrics = task.train(
            parsed, seed, progress=lambda step, steps: bar.update(bar_id, completed=step, total=steps)
        )
    out.mkdir(parents=True, exist_ok=True)
    config = {"cells": cells, "filters": filters, "input_size": input_size, "genotype": parsed.to_dict()}
    # A bare state dict: create_model("nasnet", weights=..., genotype=..., num_cells=..., filters=...)
    # with result.json's settings loads it.
    save_checkpoint(out / "model.pth", model.state_dict())
    with atomic_write(out / "result.json", "w") as handle:
        json.dump({**config, **metrics, "seed": seed, "epochs": epochs}, handle, indent=2)
    typer.echo(
        f"validation accuracy {metrics['accuracy']:.4f} ({metrics['params']:,.0f} parameters, "
        f"{metrics['madds'] / 1e6:.1f}M MAdds at {input_size}x{input_size}); weights: {out / 'model.pth'}"
    )
