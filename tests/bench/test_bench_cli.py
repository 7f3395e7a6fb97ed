"""``xbench bench`` end to end on CPU: the quick preset writes its JSON, CSV and PNG views
and an offline wandb run, and the figures in them agree with each other."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest

from xbench.cli.main import main

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_quick_preset_writes_json_csv_plots_and_an_offline_wandb_run(capsys):
    code = main(["bench", "bench=quick", "backend=naive,flash,sparse,linear"])

    assert code == 0
    printed = capsys.readouterr().out
    assert "4*B*H*Nq*Nk*D" in printed and "scaling exponents" in printed
    [out_dir] = (Path(os.environ["XBENCH_OUTPUT_DIR"]) / "bench").iterdir()
    report = json.loads((out_dir / "bench.json").read_text())
    rows = list(csv.DictReader((out_dir / "bench.csv").open()))

    # 3 lengths × 2 passes × 4 backends, every one measured
    assert len(report["points"]) == len(rows) == 24
    assert {p["status"] for p in report["points"]} == {"ok"}
    assert {r["backend"] for r in rows} == {"naive", "flash", "sparse", "linear"}
    first = report["points"][0]
    assert float(rows[0]["median_ms"]) == pytest.approx(first["latency"]["median_ms"])
    assert rows[0]["pass"] == first["shape"]["passes"]
    assert float(rows[0]["memory_bytes"]) == first["memory"]["bytes"]
    assert set(report["memory_methods"]) == {first["memory"]["method"]}
    assert report["roofs"]["matmul_tflops"] > 0 and report["roofs"]["copy_gbs"] > 0
    for point in report["points"]:
        assert point["io_fraction"] > 0
        # linear does other work than the dense convention counts: no roofline figure
        assert ("roofline_fraction" in point) == (point["backend"] != "linear")
    assert report["environment"]["threads"] >= 1
    fits = {(r["backend"], r["series"].split()[4]): r for r in report["exponents"]}
    assert fits[("naive", "fwd")]["memory_exponent"] == pytest.approx(2.0, abs=0.1)
    assert fits[("flash", "fwd")]["memory_exponent"] == pytest.approx(1.0, abs=0.1)
    assert len(report["crossovers"]) == 2 * 2 * 3  # 2 passes × (naive, flash) × 3 others
    for name in ("latency.png", "memory.png"):
        assert (out_dir / name).read_bytes()[:8] == PNG_MAGIC
    assert list((out_dir / "wandb").glob("offline-run-*"))
