"""Kernel benchmarks of the cross-attention op alone (``xbench bench``): sweeps over shapes,
scaling fits, crossovers and roofline fractions. One module per job: ``grid`` (what to
measure), ``timing`` (how one point is measured), ``analysis`` (what the points say),
``output`` (tables, files, plots, wandb) and ``command`` (the CLI entry)."""


def bench_command(args: list[str]) -> int:
    """``xbench bench [key=value ...]`` (the heavy modules load only when it runs)."""
    from xbench.bench.command import bench_command as run

    return run(args)
