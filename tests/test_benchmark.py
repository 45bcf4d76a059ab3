"""tools/analysis/benchmark.py (its main, called in this process) and l2vit.analysis.benchmark /
benchmark_report: the real backbones timed on tiny inputs (every model, mode and size recorded, ratios equal to the
quotients of the medians and printed, plot and docs written, docs rendered again from the JSON alone), the budget
that skips instead of running on, a clear error for a bad size, the derived exponents and targets on known numbers,
the CPU peak memory of known allocations, and the renderer on a hand-built record."""
import argparse
import json
import math
import os.path as osp
import re

import pytest
import torch

from helpers import ROOT, run_main
from l2vit.analysis import benchmark, benchmark_report

TOOL = osp.join(ROOT, 'tools', 'analysis', 'benchmark.py')
SIZES = ('64x64', '96x128')
MODES = ('infer', 'train-cp', 'train')
MODELS = ('l2vit-t', 'swin-t', 'vit-s')
PNG_MAGIC = b'\x89PNG\r\n\x1a\n'


@pytest.fixture(scope='module')
def run(tmp_path_factory):
    """One real run on tiny inputs: (stdout, report, out dir, docs path)."""
    out = tmp_path_factory.mktemp('benchmark')
    docs = out / 'docs' / 'benchmarks.md'
    result = run_main(TOOL, '--sizes', '64', '96x128', '--repeats', '1', '--warmup', '1', '--modes', *MODES,
                      '--out-dir', str(out), '--docs', str(docs))
    return result.stdout, json.loads((out / 'benchmark.json').read_text()), out, docs


@pytest.fixture(scope='module')
def over_budget(tmp_path_factory):
    """A run whose budget no step can meet: (completed process, report, out dir)."""
    out = tmp_path_factory.mktemp('budget')
    result = run_main(TOOL, '--sizes', '96', '64', '--modes', 'infer', 'train', '--models', 'l2vit-t', 'swin-t',
                      '--budget', '0.000001', '--repeats', '1', '--warmup', '1', '--no-flops', '--out-dir', str(out))
    return result, json.loads((out / 'benchmark.json').read_text()), out


def section(stdout: str, mode: str) -> str:
    """The printed table of one mode."""
    match = re.search(rf'^## {re.escape(mode)}\n(.*?)(?=^## )', stdout, re.M | re.S)
    assert match, f'no table for {mode} in:\n{stdout}'
    return match.group(1)


def row(table: str, size: str, model: str) -> list:
    rows = [line for line in table.splitlines() if line.startswith(f'| {size} | {model} |')]
    assert len(rows) == 1, f'expected one row for {size} {model} in:\n{table}'
    return [cell.strip() for cell in rows[0].strip('|').split('|')]


# ---------------------------------------------------------------------------------------------------- measuring
def test_every_model_mode_and_size_is_measured(run):
    _, report, _, _ = run
    assert report['settings']['modes'] == list(MODES) and report['settings']['sizes'] == list(SIZES)
    assert '--sizes 64 96x128' in report['command'] and report['machine']['threads'] >= 1
    for key in ('cpu', 'cpu_count', 'python', 'torch', 'mmengine', 'mmdet', 'mmseg'):
        assert report['machine'][key], key
    gemm = report['gemm']
    assert gemm['median_s'] > 0 and math.isclose(gemm['flops_per_s'], 2 * 2048**3 / gemm['median_s'])
    assert len(gemm['times_s']) == len(MODES) * len(SIZES)  # timed once in every round (one round per size here)
    entries = {(e['model'], e['mode'], e['size']): e for e in report['results']}
    assert set(entries) == {(m, mode, s) for m in MODELS for mode in MODES for s in SIZES}
    assert report['skipped'] == []
    for key, e in entries.items():
        assert e['status'] == 'measured' and len(e['times_s']) == 1 and len(e['warmup_s']) == 1, key
        assert 0 < e['min_s'] <= e['median_s'], key
        assert e['memory_bytes'] > 0, key
        if e['mode'] == 'infer':
            assert e['macs'] > 0, key
            assert math.isclose(e['flops_per_s'], 2 * e['macs'] / e['median_s']), key
            assert e['gemm_median_s'] in gemm['times_s'], key  # one round here: that round's GEMM time
            assert math.isclose(e['gemm_percent'], 100 * e['flops_per_s'] / (2 * 2048**3 / e['gemm_median_s'])), key
        else:
            assert e['macs'] is None and e['gemm_percent'] is None, key
    # Larger inputs cost more multiply-adds; the with_cp models count the same as the plain ones in infer.
    for model in MODELS:
        assert entries[(model, 'infer', '96x128')]['macs'] > entries[(model, 'infer', '64x64')]['macs']


def test_ratios_are_quotients_of_medians_and_are_printed(run):
    stdout, report, _, _ = run
    entries = {(e['model'], e['mode'], e['size']): e for e in report['results']}
    ratios = report['derived']['ratios']
    assert {(r['model'], r['mode'], r['size']) for r in ratios} == {
        (m, mode, s) for m in ('l2vit-t', 'vit-s') for mode in MODES for s in SIZES}
    for r in ratios:
        e, base = entries[(r['model'], r['mode'], r['size'])], entries[('swin-t', r['mode'], r['size'])]
        assert math.isclose(r['time_vs_swin'], e['median_s'] / base['median_s'], rel_tol=1e-12), r
        if e['memory_bytes'] and base['memory_bytes']:
            assert math.isclose(r['memory_vs_swin'], e['memory_bytes'] / base['memory_bytes'], rel_tol=1e-12), r
        cells = row(section(stdout, r['mode']), r['size'], r['model'])
        assert abs(float(cells[2]) - e['median_s'] * 1e3) <= 0.05, (cells, e['median_s'])
        assert cells[5] == f'{r["time_vs_swin"]:.2f}', (cells, r)
        if r['memory_vs_swin'] is not None:
            assert cells[6] == f'{r["memory_vs_swin"]:.2f}', (cells, r)
    cells = row(section(stdout, 'infer'), '64x64', 'swin-t')  # the baseline itself has no ratio
    assert cells[5] == cells[6] == '—', cells
    for c in report['derived']['checkpoint_memory']:
        plain, cp = entries[(c['model'], 'train', c['size'])], entries[(c['model'], 'train-cp', c['size'])]
        assert (c['train_bytes'], c['train_cp_bytes']) == (plain['memory_bytes'], cp['memory_bytes'])
        if plain['memory_bytes'] and cp['memory_bytes']:
            assert math.isclose(c['ratio'], cp['memory_bytes'] / plain['memory_bytes'], rel_tol=1e-12)
    assert len(report['derived']['checkpoint_memory']) == len(MODELS) * len(SIZES)
    # Nothing at 800×1333 or 512²..1536²: every target says so.
    assert [t['status'] for t in report['targets']] == ['not measured'] * 5
    assert re.search(r'\| infer at 800×1333: L²ViT-T / Swin-T latency ≤ 0\.90 \| — \| not measured \|', stdout)


def test_plot_is_a_png(run):
    _, _, out, docs = run
    for path in (out / 'benchmark.png', docs.parent / 'benchmarks_cpu.png'):
        data = path.read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 1000, path


# ---------------------------------------------------------------------------------------------------- docs
def test_docs_hold_the_json_numbers_and_the_command(run):
    stdout, report, out, docs = run
    text = docs.read_text(encoding='utf-8')
    assert f'Generated by `{report["command"]}` on {report["date"]}; do not edit by hand' in text
    assert (f'`python tools/analysis/benchmark.py --from-json {osp.normpath(out / "benchmark.json")} --docs {docs}`'
            in text)
    assert '![median time against pixels, log-log](benchmarks_cpu.png)' in text
    for mode in MODES:
        for size in SIZES:
            for model in MODELS:
                assert ' | '.join(row(section(stdout, mode), size, model)) in text, (mode, size, model)
    assert f'{report["gemm"]["flops_per_s"] / 1e9:.1f} GFLOP/s' in text
    # The page is a pure function of the JSON (and of the paths it names).
    assert text == benchmark_report.render_markdown([report], [osp.normpath(out / 'benchmark.json')], str(docs),
                                                    ['benchmarks_cpu.png'])


def test_from_json_renders_the_same_page_without_measuring(run, over_budget):
    _, report, out, docs = run
    json_path = out / 'benchmark.json'
    saved_json, saved_docs = json_path.read_bytes(), docs.read_text(encoding='utf-8')
    docs.unlink()
    (docs.parent / 'benchmarks_cpu.png').unlink()
    result = run_main(TOOL, '--from-json', str(json_path), '--docs', str(docs))
    assert docs.read_text(encoding='utf-8') == saved_docs
    assert (docs.parent / 'benchmarks_cpu.png').read_bytes().startswith(PNG_MAGIC)
    assert json_path.read_bytes() == saved_json
    assert 'GEMM reference' not in result.stderr and 'infer 64x64 ...' not in result.stderr, result.stderr

    # Two runs: one section each, in the given order, each with its own plot.
    _, budget_report, budget_out = over_budget
    both = docs.parent / 'both.md'
    run_main(TOOL, '--from-json', str(budget_out / 'benchmark.json'), str(json_path), '--docs', str(both))
    text = both.read_text(encoding='utf-8')
    first = text.index(f'Measured by `{budget_report["command"]}`')
    second = text.index(f'Measured by `{report["command"]}`')
    assert first < second
    assert text.index('(both_cpu1.png)') < second < text.index('(both_cpu2.png)')
    assert (docs.parent / 'both_cpu2.png').read_bytes().startswith(PNG_MAGIC)


# ---------------------------------------------------------------------------------------------------- budget, errors
def test_budget_skips_with_a_reason(over_budget):
    result, report, out = over_budget
    entries = {(e['model'], e['mode'], e['size']): e for e in report['results']}
    assert report['settings']['sizes'] == ['64x64', '96x96']  # increasing pixel count
    assert len(entries) == 8 and len(report['skipped']) == 8
    for (model, mode, size), e in entries.items():
        assert e['status'] == 'skipped' and e['times_s'] == [] and e['median_s'] is None, e
        if size == '64x64':
            assert re.fullmatch(r'its first warm-up step took [\d.e+-]+ s, over the budget of 1e-06 s', e['reason']), e
            assert len(e['warmup_s']) == 1
        else:  # never run: a smaller size was over the budget
            assert e['reason'].startswith('at 64x64, a smaller size, its first warm-up step took'), e
            assert e['warmup_s'] == []
    assert f'- 96x96 swin-t: skipped: {entries[("swin-t", "train", "96x96")]["reason"]}' in result.stdout
    assert report['derived']['ratios'] == [] and all(t['status'] == 'not measured' for t in report['targets'])
    assert (out / 'benchmark.png').read_bytes().startswith(PNG_MAGIC)


@pytest.mark.parametrize('argv,message', [
    (['--sizes', '64', '12y'], "argument --sizes: invalid size '12y': expected a positive integer N (an N×N image) "
     'or HxW such as 800x1333'),
    (['--sizes', '0x64'], "invalid size '0x64'"),
    (['--repeats', '0'], '--repeats must be a positive integer, got 0'),
    (['--from-json', 'no/such.json'], 'error: --from-json: no such file: no/such.json'),
])
def test_bad_arguments_are_clear_errors(argv, message):
    result = run_main(TOOL, *argv, check=False)
    assert result.returncode == 2 and message in result.stderr, result.stderr


# ---------------------------------------------------------------------------------------------------- derived values
def test_exponents_ratios_and_targets_on_known_numbers():
    """Power laws in, their exponents out; targets compared with their limits."""
    entries = []
    for size in ((512, 512), (800, 1333), (1024, 1024), (1536, 1536)):
        pixels = size[0] * size[1]
        for model, mode, seconds, nbytes in (
                ('l2vit-t', 'infer', 1e-6 * pixels**1.05, 100 * pixels),
                ('swin-t', 'infer', 1e-6 * pixels**1.2, 200 * pixels),
                ('l2vit-t', 'train', 3e-6 * pixels, 1000 * pixels),
                ('l2vit-t', 'train-cp', 4e-6 * pixels, 500 * pixels)):
            entry = benchmark.new_entry(model, mode, size)
            entry.update(times_s=[seconds], median_s=seconds, min_s=seconds, memory_bytes=nbytes)
            entries.append(entry)
    target = next(e for e in entries if (e['model'], e['mode'], e['size']) == ('l2vit-t', 'infer', '800x1333'))
    target.update(macs=10**9, gemm_percent=75.0)
    derived = benchmark.derive(entries)
    by_key = {(x['model'], x['mode'], x['quantity']): x for x in derived['exponents']}
    assert math.isclose(by_key[('l2vit-t', 'infer', 'time')]['from_512_to_1536'], 1.05)
    assert math.isclose(by_key[('l2vit-t', 'infer', 'time')]['fit_from_512'], 1.05)
    assert math.isclose(by_key[('swin-t', 'infer', 'time')]['fit_from_512'], 1.2)
    assert math.isclose(by_key[('l2vit-t', 'train-cp', 'memory')]['fit_from_512'], 1.0)
    assert by_key[('l2vit-t', 'infer', 'time')]['fit_sizes'] == ['512x512', '800x1333', '1024x1024', '1536x1536']
    ratio = next(r for r in derived['ratios'] if (r['mode'], r['size']) == ('infer', '1024x1024'))
    assert math.isclose(ratio['time_vs_swin'], (1024 * 1024)**-0.15) and math.isclose(ratio['memory_vs_swin'], 0.5)
    assert all(math.isclose(c['ratio'], 0.5) for c in derived['checkpoint_memory'])
    results = {t['key']: t for t in benchmark.evaluate_targets(entries, derived)}
    assert results['latency_vs_swin']['status'] == 'met'  # (800·1333)^-0.15 ≈ 0.13
    assert results['memory_vs_swin']['status'] == 'met' and math.isclose(results['memory_vs_swin']['measured'], 0.5)
    assert results['time_exponent']['status'] == 'met' and math.isclose(results['time_exponent']['measured'], 1.05)
    assert results['gemm_percent']['status'] == 'met'
    assert results['checkpoint_memory']['status'] == 'met'
    # The same numbers with a swapped baseline: slower and bigger than Swin-T, so not met.
    for entry in entries:
        if entry['mode'] == 'infer':
            entry['model'] = 'swin-t' if entry['model'] == 'l2vit-t' else 'l2vit-t'
    next(e for e in entries if (e['model'], e['mode'], e['size']) == ('l2vit-t', 'infer', '800x1333')).update(
        gemm_percent=50.0)
    results = {t['key']: t for t in benchmark.evaluate_targets(entries, benchmark.derive(entries))}
    assert [results[k]['status'] for k in ('latency_vs_swin', 'memory_vs_swin', 'time_exponent')] == ['not met'] * 3
    assert results['gemm_percent']['status'] == 'not met'


# ---------------------------------------------------------------------------------------------------- measuring, unit
def test_cpu_peak_memory_is_the_most_held_at_once():
    """The running sum of the profiler's allocation and release records: what is held at once, not the total."""
    def step():
        a = torch.empty(2**20, dtype=torch.uint8)
        b = torch.empty(2**19, dtype=torch.uint8)
        del a
        c = torch.empty(2**18, dtype=torch.uint8)
        del b, c

    before = torch.empty(2**21, dtype=torch.uint8)  # held before the step: not counted
    assert benchmark.peak_memory(step, torch.device('cpu')) == 2**20 + 2**19
    del before


class _Tiny(torch.nn.Module):
    """A stand-in backbone: one 3x3 convolution, its output as a tuple (as the backbones return theirs)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)

    def forward(self, x):
        return (self.conv(x), )


def test_measure_report_returns_json_data(tmp_path, monkeypatch):
    """The record is plain JSON data as measured (before any file), with the multiply-adds of the model counted."""
    monkeypatch.setattr(benchmark, 'build_models', lambda names, with_cp, device: {n: _Tiny() for n in names})
    monkeypatch.setattr(benchmark, 'GEMM_N', 64)  # the reference GEMM, small
    options = argparse.Namespace(sizes=[(24, 24), (16, 16)], modes=['infer', 'train'], models=['l2vit-t', 'swin-t'],
                                 compile=False, batch=1, warmup=1, repeats=2, budget=60.0, device=None, threads=None,
                                 no_flops=False, out_dir=str(tmp_path), docs=None)
    report = benchmark.measure_report(options, ['--sizes', '24', '16'], torch.device('cpu'))
    assert json.loads(json.dumps(report)) == report
    assert report['schema'] == benchmark.SCHEMA
    assert report['command'] == 'python tools/analysis/benchmark.py --sizes 24 16'
    assert report['settings']['sizes'] == ['16x16', '24x24'] and len(report['gemm']['times_s']) == 2 * 2 * 2
    gemm = report['gemm']
    assert gemm['m'] == 64 and math.isclose(gemm['flops_per_s'], 2 * 64**3 / gemm['median_s'])
    assert {(e['model'], e['mode'], e['size']) for e in report['results']} == {
        (m, mode, s) for m in options.models for mode in options.modes for s in ('16x16', '24x24')}
    for e in report['results']:
        assert e['status'] == 'measured' and len(e['times_s']) == 2 and e['memory_bytes'] > 0, e
        assert e['macs'] == (4 * 3 * 9 * (e['height'] - 2) * (e['width'] - 2) if e['mode'] == 'infer' else None), e
    assert {(r['model'], r['mode'], r['size']) for r in report['derived']['ratios']} == {
        ('l2vit-t', mode, s) for mode in options.modes for s in ('16x16', '24x24')}
    assert not list(tmp_path.iterdir())  # measuring writes nothing


# ---------------------------------------------------------------------------------------------------- rendering, unit
def hand_built_record(cpu: str = 'Test CPU', device: str = 'cpu') -> dict:
    """A record as measure_report makes one, with round numbers: L²ViT-T at half of Swin-T's time and a quarter of
    its memory."""
    entries = []
    for model, seconds, nbytes in (('l2vit-t', 0.002, 2**20), ('swin-t', 0.004, 2**22)):
        entry = benchmark.new_entry(model, 'infer', (64, 64))
        entry.update(warmup_s=[seconds], times_s=[seconds, 0.75 * seconds], median_s=seconds, min_s=0.75 * seconds,
                     memory_bytes=nbytes, macs=10**6, flops_per_s=2e6 / seconds, gemm_median_s=0.5,
                     gemm_percent=100 * (2e6 / seconds) / (2 * 2048**3 / 0.5))
        entries.append(entry)
    skipped = benchmark.new_entry('vit-s', 'infer', (64, 64))
    skipped.update(status='skipped', reason='its first warm-up step took 9 s, over the budget of 1 s')
    entries.append(skipped)
    derived = benchmark.derive(entries)
    return dict(
        schema=benchmark.SCHEMA, command='python tools/analysis/benchmark.py --sizes 64 --modes infer',
        date='2026-01-02T03:04:05+00:00',
        machine=dict(cpu=cpu, cpu_count=2, cpus_available=2, platform='Linux-test', device=device, device_name=None,
                     cuda=None, python='3.11.7', torch='2.x', mmengine='0.10', mmdet='3.3', mmseg='1.2', threads=1),
        settings=dict(sizes=['64x64'], modes=['infer'], models=['l2vit-t', 'swin-t', 'vit-s'], batch=1, warmup=1,
                      repeats=2, budget_s=1.0, device=device, threads=1, flops=True, out_dir='out', docs=None),
        gemm=dict(op='torch.mm', dtype='float32', m=2048, n=2048, k=2048, times_s=[0.5, 0.5], median_s=0.5, min_s=0.5,
                  flops_per_s=2 * 2048**3 / 0.5),
        results=entries, skipped=[dict(model='vit-s', mode='infer', size='64x64', status='skipped',
                                       reason=skipped['reason'])],
        derived=derived, targets=benchmark.evaluate_targets(entries, derived), notes=['a note'])


def test_renderer_tables_of_a_hand_built_record():
    lines = benchmark_report.report_lines(hand_built_record())
    assert lines[0] == '- machine: Test CPU, 2 cores (2 available), Linux-test'
    assert '- settings: batch 1, 1 warm-up step, median (and min) of 2 interleaved rounds, budget 1 s per first ' \
           'warm-up step' in lines
    table = '\n'.join(lines)
    assert '| 64x64 | l2vit-t | 2.00 | 1.50 | 1.0 | 0.50 | 0.25 | 1.0 | 2.9 |' in table
    assert '| 64x64 | swin-t | 4.00 | 3.00 | 4.0 | — | — | 0.5 | 1.5 |' in table
    assert '| 64x64 | vit-s | skipped | — | — | — | — | — | — |' in table
    assert '- 64x64 vit-s: skipped: its first warm-up step took 9 s, over the budget of 1 s' in lines
    assert '| infer at 800×1333: L²ViT-T / Swin-T latency ≤ 0.90 | — | not measured |' in lines
    assert lines[-1] == '- note: a note' and '### infer' in lines and '### Targets' in lines


def test_renderer_page_of_hand_built_records():
    cpu, gpu = hand_built_record(), hand_built_record(device='cuda')
    gpu['machine'].update(device_name='Test GPU', cuda='12.8')
    page = benchmark_report.render_markdown([cpu, gpu], ['runs/cpu.json', 'runs/gpu.json'], 'docs/bench.md',
                                            ['bench_cpu.png', None])
    assert page.startswith('# Speed and memory: L²ViT-T, Swin-T and ViT-S/16 backbones\n\n')
    assert ('`python tools/analysis/benchmark.py --from-json runs/cpu.json runs/gpu.json --docs docs/bench.md`'
            in page)
    assert 'Models: `l2vit-t` = L²ViT-T; `swin-t` = Swin-T; `vit-s` = ViT-S/16. All are' in page
    assert page.index('## CPU: Test CPU, 1 thread') < page.index('## GPU: Test GPU')
    assert '- device: cuda (Test GPU, CUDA 12.8); torch intra-op threads: 1' in page
    assert page.count('![median time against pixels, log-log](bench_cpu.png)') == 1 and page.count('![') == 1
    assert page == benchmark_report.render_markdown(json.loads(json.dumps([cpu, gpu])), ['runs/cpu.json',
                                                    'runs/gpu.json'], 'docs/bench.md', ['bench_cpu.png', None])
    assert benchmark_report.image_names([cpu, gpu], 'docs/bench.md') == ['bench_cpu.png', 'bench_cuda.png']
    assert benchmark_report.image_names([cpu, cpu], 'docs/bench.md') == ['bench_cpu1.png', 'bench_cpu2.png']
