"""Time `distmi report` on the MiniLM layer sweep (jobs/minilm_layer_sweep.yaml: 6 layers x 384
units x 4 targets = 9216 rows). Target: <= 10 s.

    .venv/bin/distmi run jobs/minilm_layer_sweep.yaml          # once (long on 2 cores)
    .venv/bin/python benchmarks/bench_report.py --results out/minilm-layer-sweep

Prints the wall and CPU time of the whole page (figures, PNG encoding, HTML) and of each
figure, for the results alone and with a baseline (the drift view; the results compared with
themselves, which costs the same as a real baseline of the same size). ``--repeat`` renders
several times and reports the median.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=Path("out/minilm-layer-sweep"))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from distmi.reduce import load_results
    from distmi.report import figures, write_report
    from distmi.report.tables import layer_order

    table, manifest = load_results(args.results)
    print(f"{args.results}: {len(table)} rows, {table['layer'].nunique()} layers, "
          f"{table['target'].nunique()} targets, method {manifest.get('method')}")
    print(f"load: {os.getloadavg()[0]:.1f} (1-min average)")
    order = layer_order(table, manifest)
    single = {
        "layer_target_heatmap": lambda: figures.layer_target_heatmap(table, order),
        "mi_vs_depth": lambda: figures.mi_vs_depth(table, order),
        "top_units_ci": lambda: figures.top_units_ci(table, 10),
        f"unit_target_heatmap (x{len(order)})": lambda: [
            figures.unit_target_heatmap(table, layer) for layer in order],
    }
    import io

    for name, make in single.items():
        t0, c0 = time.perf_counter(), _cpu()
        made = make()
        for fig in made if isinstance(made, list) else [made]:
            fig.savefig(io.BytesIO(), format="png", dpi=100, pil_kwargs={"compress_level": 3})
        print(f"  {name:34s} {time.perf_counter() - t0:6.2f} s wall, {_cpu() - c0:5.2f} s CPU "
              "(with PNG encoding)")
    with tempfile.TemporaryDirectory() as tmp:
        for label, baseline in (("report", None), ("report --baseline (drift view)", args.results)):
            walls, cpus = [], []
            for k in range(args.repeat):
                t0, c0 = time.perf_counter(), _cpu()
                page = write_report(args.results, Path(tmp) / f"r{k}", baseline=baseline)
                walls.append(time.perf_counter() - t0)
                cpus.append(_cpu() - c0)
            size = page.stat().st_size / 1e6
            print(f"{label:32s} median {statistics.median(walls):5.2f} s wall, "
                  f"{statistics.median(cpus):5.2f} s CPU over {args.repeat} runs "
                  f"(min {min(walls):.2f}, max {max(walls):.2f}); page {size:.1f} MB "
                  f"(target <= 10 s)")


if __name__ == "__main__":
    main()
