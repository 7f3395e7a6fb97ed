"""``xbench bench``: compose the bench config with Hydra, run the sweep, write the views.

Backends: ``backend=flash,sparse`` (or ``backends=[flash,sparse]``) lists the backends
measured side by side in *one* run (not a Hydra multirun); without it, the preset's
``backends`` list, else every installed backend. Each listed backend's options node is
composed at ``backend.<name>``, so ``backend.sparse.window=2`` sets one backend's option.
Presets are the ``bench`` group (``configs/bench``): ``bench=quick|scaling|real_shapes|...``;
``bench.<setting>=value`` overrides one setting (see :class:`~xbench.bench.grid.BenchSettings`).
``bench.variants`` adds instances of a backend with other options, measured beside it under
the name ``backend[option=value,...]`` (e.g. ``flash[layout=packed]`` next to ``flash``).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from xbench.api.backend import AttentionBackend
from xbench.api.errors import UserError, did_you_mean, first_line
from xbench.bench import analysis, grid, output, timing
from xbench.measure.inputs import DTYPES, input_bytes
from xbench.registry import Registry

PRIMARY = "xbench_bench"  # configs/xbench_bench.yaml
BACKENDS_NODE = "bench_backends"  # the backends it measures, stored before composing
# Every top-level key the bench reads (configs/xbench_bench.yaml and the backends node).
TOP_LEVEL_KEYS = ("bench", "backends", "backend", "logger", "threads", "output_root", "output_dir")


@dataclass
class BenchPlan:
    """A validated bench: settings, built backends and where the outputs go."""

    settings: grid.BenchSettings
    backends: dict[str, AttentionBackend]
    backend_options: dict[str, dict[str, Any]]
    exact: dict[str, bool]
    logger: dict[str, Any]
    threads: int | None
    out_dir: Path
    registry: Registry


def bench_command(args: list[str]) -> int:
    """Entry point of ``xbench bench [key=value ...]``."""
    from xbench.integrations.wandb import wandb_enabled
    from xbench.registry import get_registry

    if {"-h", "--help"} & set(args):
        print(usage(), end="")
        return 0
    registry = get_registry()
    config = compose(args, registry)
    plan = plan_bench(config, registry)
    report = run_bench(plan)
    written = output.write_files(report, plan.out_dir, plan.settings.plots)
    output.print_report(report)
    if wandb_enabled(plan.logger):
        output.log_to_wandb(report, plan.logger, written)
    Console().print(f"bench outputs: {plan.out_dir}", highlight=False)
    failed = [c for c in report["checks"] if not c["passed"]]
    return 1 if failed else 0


def usage() -> str:
    """The presets and every ``bench.<setting>`` with its default and meaning."""
    from xbench.api.options import describe_options

    lines = [
        "usage: xbench bench [backend=NAME[,NAME...]] [bench=PRESET] [key=value ...]",
        "",
        f"presets: {', '.join(presets())} (default: {default_preset()})",
        "backend options: backend.<name>.<option>=value (xbench plugins -v lists them)",
        "other keys: threads=N, logger=wandb|none, output_root=DIR",
        "settings:",
    ]
    lines += [f"  {row.text('bench.')}" for row in describe_options(grid.BenchSettings)]
    return "\n".join(lines) + "\n"


def compose(args: list[str], registry: Registry) -> dict[str, Any]:
    """The composed config as a plain dict; any bad override is a one-line UserError.

    Composed twice: first to learn which backends the run measures (``backend=``, the
    preset's list or every installed one), then with each one's options node in place."""
    from xbench.config.compose import check_plugin_choices, store_plugin_configs, store_settings
    from xbench.config.preflight import check_keys

    overrides = [a for a in args if a not in ("-m", "--multirun")]
    check_plugin_choices(overrides, registry)  # backend=... names, with a did-you-mean
    overrides = [_list_backends(o) for o in overrides]
    _check_preset(overrides)
    store_plugin_configs(registry)
    store_settings({"bench": grid.BenchSettings})
    installed = sorted(registry.backends)
    plain = [o for o in overrides if not _key(o).startswith("backend.")]
    names = _compose(plain, [], installed)["backends"]
    for name in names:
        registry.backend(name)
    config = _compose(overrides, list(names), installed)
    check_keys(config, TOP_LEVEL_KEYS, "")
    return config


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def _list_backends(override: str) -> str:
    """``backend=a,b`` → ``backends=[a,b]``: several backends in one run."""
    key, _, value = override.partition("=")
    if key != "backend":
        return override
    names = value.strip("[]").split(",")
    return f"backends=[{','.join(n.strip() for n in names)}]"


def presets() -> list[str]:
    folder = files("xbench_configs") / "bench"
    return sorted(
        p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml")
    )


def default_preset() -> str:
    """The preset the primary config selects when ``bench=`` is not given."""
    from omegaconf import OmegaConf

    primary = OmegaConf.load(str(files("xbench_configs") / f"{PRIMARY}.yaml"))
    return next(e["bench"] for e in primary.defaults if not isinstance(e, str) and "bench" in e)


def _check_preset(overrides: list[str]) -> None:
    available = presets()
    for override in overrides:
        if _key(override) == "bench":
            name = override.split("=", 1)[1]
            if name not in available:
                hint = did_you_mean(name, available)
                raise UserError(
                    f"unknown bench preset {name!r}; choose one of: {', '.join(available)}.{hint}"
                )


def _compose(overrides: list[str], backends: list[str], installed: list[str]) -> dict[str, Any]:
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module
    from hydra.core.config_store import ConfigStore
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from xbench.config.preflight import hydra_error

    selection = {
        "defaults": [{f"backend@backend.{name}": name} for name in backends],
        "backends": installed,
    }
    ConfigStore.instance().store(name=BACKENDS_NODE, node=selection)
    try:
        with initialize_config_module(config_module="xbench_configs", version_base="1.3"):
            config = hydra_compose(config_name=PRIMARY, overrides=overrides)
        return OmegaConf.to_container(config, resolve=True)
    except (HydraException, OmegaConfBaseException) as error:
        reason = hydra_error(error, overrides, PRIMARY, "xbench_configs")
        raise UserError(f"bench config: {reason}") from None
    except ValueError as error:
        raise UserError(f"bench config: {first_line(error) or repr(error)}") from None


def plan_bench(config: dict[str, Any], registry: Registry) -> BenchPlan:
    """Validate every setting and build the backends; nothing is measured yet."""
    from xbench.api.options import build_options
    from xbench.integrations.wandb import check_logger_settings

    logger = config.get("logger") or {"name": "none"}
    check_logger_settings(logger)
    settings = build_options(grid.BenchSettings, config.get("bench"), "bench")
    grid.check_settings(settings)
    for name in settings.tasks:
        registry.task(name)
    backends, options, exact = {}, {}, {}
    for name in config["backends"]:
        spec = registry.backend(name)
        exact[name] = spec.exact
        node = {k: v for k, v in (config.get("backend") or {}).get(name, {}).items() if k != "name"}
        built = build_options(spec.options, node, f"backend.{name}")
        options[name] = dataclasses.asdict(built)
        backends[name] = spec.build(built)
    for index, variant in enumerate(settings.variants):
        where = f"bench.variants[{index}]"
        name, changes = _variant(variant, where)
        spec = registry.backend(name)
        node = {k: v for k, v in (config.get("backend") or {}).get(name, {}).items() if k != "name"}
        built = build_options(spec.options, {**node, **changes}, where + ".options")
        label = f"{name}[{','.join(f'{k}={v}' for k, v in changes.items())}]"
        if label in backends:
            raise UserError(f"{where}: {label} is measured twice; drop one of them")
        exact[label], options[label] = spec.exact, dataclasses.asdict(built)
        backends[label] = spec.build(built)
    if not backends:
        raise UserError("no backend to measure; pass backend=NAME[,NAME...]")
    threads = config.get("threads")
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise UserError(f"threads={threads!r} must be a positive integer or null")
    return BenchPlan(
        settings, backends, options, exact, logger, threads, Path(config["output_dir"]), registry
    )


def _variant(variant: dict[str, Any], where: str) -> tuple[str, dict[str, Any]]:
    """(backend name, option changes) of one ``bench.variants`` entry."""
    unknown = sorted(set(variant) - {"backend", "options"})
    name, changes = variant.get("backend"), variant.get("options")
    if unknown or not isinstance(name, str) or not isinstance(changes, dict) or not changes:
        raise UserError(
            f"{where}={variant!r} must be {{backend: NAME, options: {{OPTION: VALUE, ...}}}}"
        )
    return name, changes


def run_bench(plan: BenchPlan) -> dict[str, Any]:
    """Measure every point (interleaving backends per shape) and analyse them."""
    from xbench.measure.memory import MEMORY_METHODS
    from xbench.measure.types import FLOPS_CONVENTION
    from xbench.records.environment import environment, machine_load

    settings = plan.settings
    device = grid.resolve_device(settings.device)
    if plan.threads:
        torch.set_num_threads(plan.threads)
    load_at_start = machine_load()
    roofs = {}
    if settings.roofline:
        dtype = DTYPES[settings.dtype[0]]
        roofs = {
            "matmul_tflops": timing.matmul_peak_tflops(device, dtype),
            "copy_gbs": timing.copy_bandwidth_gbs(device),
            "dtype": settings.dtype[0],
        }
    tasks: list[dict[str, Any]] = []
    left_out: list[int] = []
    if settings.mode == "scaling":
        points, stops = _scaling_points(plan, device)
    else:
        pairs = [(nq, nk, "") for nq, nk in grid.length_pairs(settings)]
        if settings.mode == "real_shapes":
            tasks = task_lengths(plan.registry, settings.tasks)
            pairs = [(t["nq"], t["nk"], t["task"]) for t in tasks if "nq" in t]
        shapes, left_out = grid.cap_cpu_lengths(settings, grid.expand(settings, pairs), device)
        points, stops = _grid_points(plan, shapes, device), []
    references = []
    if settings.bare:
        for shape in _forward_shapes(points):
            references += timing.bare_references(plan.backends, shape, settings, device)
    analysis.add_roofline(points, roofs)
    fitted = analysis.exponents(points)
    methods = sorted({p["memory"]["method"] for p in points if p.get("memory")})
    load = {"start": load_at_start, "end": machine_load()}
    return {
        "schema": "xbench.bench/2",
        "settings": dataclasses.asdict(settings),
        "backends": plan.backend_options,
        "environment": environment(),
        "load": load,  # CPU figures read slower under contention: said beside them
        "device": str(device),
        "flops_convention": FLOPS_CONVENTION,
        "memory_methods": {name: MEMORY_METHODS[name] for name in methods},
        "roofs": roofs,
        "tasks": tasks,
        "points": points,
        "left_out_nk": left_out,
        "stops": stops,
        "references": references,
        "exponents": fitted,
        "crossovers": analysis.crossovers(points, settings.references),
        "checks": analysis.evaluate_checks(settings.checks, points, references, fitted),
    }


def _grid_points(plan: BenchPlan, shapes: list[grid.Shape], device) -> list[dict[str, Any]]:
    points = []
    for shape in shapes:
        for name, backend in plan.backends.items():
            point = timing.measure_point(backend, shape, plan.settings, device)
            points.append({"backend": name, "exact": plan.exact[name], **point})
    return points


def _scaling_points(plan: BenchPlan, device) -> tuple[list[dict], list[dict]]:
    """Doubling lengths; a backend's series stops at its first OOM or slower-than-cap point."""
    settings = plan.settings
    points, stops = [], []
    last: dict[tuple, dict] = {}
    stopped: set[tuple] = set()
    for nq, nk in grid.scaling_lengths(settings):
        shapes = grid.expand(settings, [(nq, nk, "")])
        for shape in shapes:
            for name, backend in plan.backends.items():
                key = (grid.series_key(shape), name)
                if key in stopped:
                    continue
                projected = _projected(last.get(key), shape, device)
                point = timing.measure_point(backend, shape, settings, device, projected)
                points.append({"backend": name, "exact": plan.exact[name], **point})
                reason = _stop_reason(point, settings)
                if reason:
                    stopped.add(key)
                    stops.append(
                        {"backend": name, "nk": shape.nk, "nq": shape.nq, "reason": reason}
                    )
                else:
                    last[key] = point
        if len(stopped) == len(plan.backends) * len(shapes):
            break
    return points, stops


def _projected(previous: dict | None, shape: grid.Shape, device) -> int | None:
    """Worst-case (quadratic) growth of the previous length's peak, plus the inputs."""
    if previous is None or previous["status"] != "ok":
        return None
    growth = (shape.nq * shape.nk) / (previous["shape"]["nq"] * previous["shape"]["nk"])
    inputs = input_bytes(shape.attention(device, None))
    return int(analysis.memory_bytes(previous) * growth) + inputs


def _stop_reason(point: dict, settings: grid.BenchSettings) -> str | None:
    if point["status"] != "ok":
        return point["status"]
    median = analysis.median_ms(point)
    if median > settings.time_cap_ms:
        return f"time cap: {median:.0f} ms > bench.time_cap_ms={settings.time_cap_ms:g}"
    return None


def _forward_shapes(points: list[dict]) -> list[grid.Shape]:
    shapes = []
    for point in points:
        shape = analysis.shape_of(point)
        if shape.passes == "fwd" and point["status"] == "ok" and shape not in shapes:
            shapes.append(shape)
    return shapes


def task_lengths(registry: Registry, names: list[str]) -> list[dict[str, Any]]:
    """Each task's target (Nq) and source (Nk) lengths: built with its default options (the
    embedded data is generated once and cached); a task that fails to build is reported."""
    from xbench.api.options import build_options

    rows = []
    for name in names or sorted(registry.tasks):
        spec = registry.task(name)
        start = time.perf_counter()
        try:
            task = spec.build(build_options(spec.options, {}, f"task.{name}"))
        except Exception as error:  # one broken task must not hide the others' shapes
            rows.append({"task": name, "error": f"{type(error).__name__}: {error}"[:300]})
            continue
        rows.append(
            {
                "task": name,
                "nq": task.target_length,
                "nk": task.source_length,
                "build_seconds": round(time.perf_counter() - start, 2),
            }
        )
    return rows
