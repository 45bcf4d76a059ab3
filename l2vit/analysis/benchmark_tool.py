"""What ``tools/analysis/benchmark.py`` does with its options: measure (:mod:`l2vit.analysis.benchmark`) or load saved
records, save the record and its plot, print the tables and write the Markdown page
(:mod:`l2vit.analysis.benchmark_report`)."""
import os
import os.path as osp
from typing import Sequence

from .benchmark import Options, load_report, measure_report, save_report, select_device
from .benchmark_report import plot, print_report, write_docs

__all__ = ['run_benchmark_tool']


def run_benchmark_tool(options: Options, argv: Sequence[str]) -> int:
    """Without ``options.from_json``: measure, write ``benchmark.json`` and ``benchmark.png`` to ``options.out_dir``
    and print the tables; with it: print the saved records. Either way, with ``options.docs``, write the Markdown page
    (and its plots) there. ``argv`` is the tool's command line, recorded in the JSON. Returns the exit code, 0."""
    if options.from_json:
        json_paths = [osp.normpath(p) for p in options.from_json]
        reports = [load_report(p) for p in json_paths]
    else:
        device = select_device(options.device, options.threads)
        os.makedirs(options.out_dir, exist_ok=True)
        report = measure_report(options, argv, device)
        json_paths = [save_report(report, options.out_dir)]
        plot(report, osp.join(options.out_dir, 'benchmark.png'))
        reports = [report]
    for report in reports:
        print_report(report)
        print()
    if not options.from_json:
        print(f'wrote {json_paths[0]} and {osp.join(options.out_dir, "benchmark.png")}')
    if options.docs:
        write_docs(reports, json_paths, options.docs)
    return 0
