"""l2vit.analysis.benchmark (measure_steps, peak_memory, derive), op_profile, and tools/analysis/benchmark.py (its main,
called in this process): interleaved timing and budget on plain steps, the CPU peak memory of known allocations,
ratios that are quotients of medians and exponents of power laws, autocast in the forward only, the op directions
and matrix products of real profiled steps; one real run of the tool on tiny inputs (record, profile, plot, page
rendered again from the JSON alone), the targets, bad options (exit 2, nothing written) and the GPU script on the
CPU."""
import json
import math
import os
import os.path as osp
import runpy
import subprocess
import sys

import pytest
import torch

from helpers import ROOT, run_main
from l2vit.analysis import benchmark, op_profile
from l2vit.analysis.benchmark import derive, measure_steps, peak_memory

TOOL = osp.join(ROOT, 'tools', 'analysis', 'benchmark.py')
CPU = torch.device('cpu')
PNG_MAGIC = b'\x89PNG\r\n\x1a\n'


# ---------------------------------------------------------------------------------------------------- measuring
def test_steps_are_interleaved_and_timed_once_per_round():
    calls = []
    steps = {name: (lambda n=name: calls.append(n)) for name in ('a', 'b')}
    results, reference = measure_steps(steps, CPU, warmup=2, repeats=3, memory=False,
                                       reference=lambda: calls.append('ref'))
    assert calls == ['a', 'a', 'b', 'b'] + ['ref', 'a', 'b'] * 3
    assert len(reference) == 3
    for result in results.values():
        assert result['status'] == 'measured' and len(result['warmup_s']) == 2 and len(result['times_s']) == 3
        assert result['median_s'] == sorted(result['times_s'])[1] and result['min_s'] == min(result['times_s'])


def test_a_step_over_the_budget_is_skipped_with_its_reason():
    results, _ = measure_steps({'slow': lambda: torch.ones(1000).sum(), 'fast': lambda: None}, CPU, repeats=2,
                               budget=1e-12, memory=False)
    assert all(r['status'] == 'skipped' and r['times_s'] == [] and r['median_s'] is None for r in results.values())
    assert results['slow']['reason'].startswith('its first warm-up step took')


def test_cpu_peak_memory_is_the_most_held_at_once():
    """The running sum of the profiler's allocation and release records: what is held at once, not the total."""
    def step():
        a = torch.empty(2**20, dtype=torch.uint8)
        b = torch.empty(2**19, dtype=torch.uint8)
        del a
        c = torch.empty(2**18, dtype=torch.uint8)
        del b, c

    before = torch.empty(2**21, dtype=torch.uint8)  # held before the step: not counted
    assert peak_memory(step, CPU) == 2**20 + 2**19
    results, _ = measure_steps({'step': step}, CPU, repeats=1)
    assert results['step']['memory_bytes'] == 2**20 + 2**19
    del before


def _entry(model, mode, size, seconds, nbytes):
    return dict(model=model, mode=mode, size=f'{size[0]}x{size[1]}', pixels=size[0] * size[1], status='measured',
                median_s=seconds, memory_bytes=nbytes)


def test_ratios_are_quotients_of_medians_and_exponents_those_of_power_laws():
    sizes = ((512, 512), (800, 1333), (1024, 1024), (1536, 1536))
    entries = []
    for size in sizes:
        p = size[0] * size[1]
        entries += [_entry('l2vit-t', 'infer', size, 1e-6 * p**1.05, 100 * p),
                    _entry('swin-t', 'infer', size, 1e-6 * p**1.2, 200 * p),
                    _entry('l2vit-t', 'train', size, 3e-6 * p, 1000 * p),
                    _entry('l2vit-t', 'train-cp', size, 4e-6 * p, 500 * p),
                    _entry('l2vit-t+compile', 'infer', size, 0.5e-6 * p**1.05, 100 * p)]
    derived = derive(entries)
    exponents = {(x['model'], x['mode'], x['quantity']): x for x in derived['exponents']}
    assert math.isclose(exponents[('l2vit-t', 'infer', 'time')]['from_512_to_1536'], 1.05)
    assert math.isclose(exponents[('swin-t', 'infer', 'time')]['fit_from_512'], 1.2)
    assert math.isclose(exponents[('l2vit-t', 'train-cp', 'memory')]['fit_from_512'], 1.0)
    ratio = next(r for r in derived['ratios'] if (r['model'], r['size']) == ('l2vit-t', '1024x1024'))
    assert math.isclose(ratio['time_vs_swin'], (1024 * 1024)**-0.15) and math.isclose(ratio['memory_vs_swin'], 0.5)
    assert len(derived['checkpoint_memory']) == 4 and all(math.isclose(c['ratio'], 0.5)
                                                          for c in derived['checkpoint_memory'])
    assert [math.isclose(r['time_vs_eager'], 0.5) for r in derived['vs_eager']] == [True] * 4
    entries[1]['status'] = 'skipped'  # no Swin-T at 512²: no ratio there
    assert '512x512' not in {r['size'] for r in derive(entries)['ratios']}


class _AutocastProbe(torch.nn.Module):
    """Records the dtype of its output in every forward, and in backward whether autocast was on."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.seen = torch.nn.Conv2d(3, 4, 3), []

    def forward(self, x):
        out = self.conv(x)
        self.seen.append(('forward', out.dtype))
        if out.requires_grad:
            out.register_hook(lambda grad: self.seen.append(('backward', torch.is_autocast_enabled('cpu'))))
        return (out, )


@pytest.mark.parametrize('autocast,dtype', [(None, torch.float32), ('bf16', torch.bfloat16)])
def test_autocast_runs_the_forward_in_its_dtype_and_backward_outside(autocast, dtype):
    probe = _AutocastProbe()
    benchmark._backbone_step(probe, 'train', torch.randn(1, 3, 8, 8), autocast)()
    benchmark._backbone_step(probe, 'infer', torch.randn(1, 3, 8, 8), autocast)()
    assert probe.seen == [('forward', dtype), ('backward', False), ('forward', dtype)]
    assert all(p.grad is None for p in probe.parameters())  # gradients dropped after each step


# ---------------------------------------------------------------------------------------------------- op profile
class _Block(torch.nn.Module):
    """The op kinds of the backbones: convolution, layer norm, linear, GELU, softmax."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.norm, self.linear = torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.LayerNorm(8), \
            torch.nn.Linear(8, 8)

    def forward(self, x):
        tokens = self.norm(self.conv(x).flatten(2).transpose(1, 2))
        return (torch.softmax(torch.nn.functional.gelu(self.linear(tokens)), dim=-1), )


def test_a_profiled_train_step_splits_ops_by_direction_and_counts_products():
    model = _Block().train()
    step = benchmark._backbone_step(model, 'train', torch.randn(1, 3, 8, 8), None, marked=True)
    step()
    run = op_profile.profile_step(step, CPU, top=1000)
    summary = run['clocks']['cpu']
    directions = {(op['op'], op['direction']) for op in summary['top_ops']}
    assert {('aten::convolution', 'forward'), ('aten::convolution_backward', 'backward'),
            ('aten::native_layer_norm_backward', 'backward')} <= directions
    assert ('aten::convolution_backward', 'forward') not in directions
    assert math.isclose(sum(op['ms'] for op in summary['top_ops']), summary['total_ms'])
    assert math.isclose(sum(summary['by_direction'].values()), summary['total_ms'])
    # The linear layer's forward addmm and its two backward mm, 2 x 64 x 8 x 8 operations each.
    assert summary['gemm_products']['flop'] == 3 * 2 * 64 * 8 * 8 and summary['gemm_products']['calls'] == 3


# ---------------------------------------------------------------------------------------------------- the tool
@pytest.fixture(scope='module')
def run(tmp_path_factory):
    """One real run on a tiny input, profiled: (stdout, record, out dir, docs path)."""
    out = tmp_path_factory.mktemp('benchmark')
    docs = out / 'docs' / 'benchmarks.md'
    result = run_main(TOOL, '--sizes', '64', '--modes', 'infer', 'train', '--models', 'l2vit-t', 'swin-t',
                      '--repeats', '1', '--warmup', '1', '--profile', '--note', 'busy', '--out-dir', out,
                      '--docs', docs)
    return result.stdout, json.loads((out / 'benchmark.json').read_text()), out, docs


def test_the_tool_measures_every_model_and_mode(run):
    _, report, out, _ = run
    entries = {(e['model'], e['mode']): e for e in report['results']}
    assert set(entries) == {(m, mode) for m in ('l2vit-t', 'swin-t') for mode in ('infer', 'train')}
    for key, e in entries.items():
        assert e['status'] == 'measured' and e['median_s'] > 0 and e['memory_bytes'] > 0, key
        if e['mode'] == 'infer':
            assert e['macs'] > 0 and math.isclose(e['flops_per_s'], 2 * e['macs'] / e['median_s']), key
    for r in report['derived']['ratios']:
        e, base = entries[(r['model'], r['mode'])], entries[('swin-t', r['mode'])]
        assert math.isclose(r['time_vs_swin'], e['median_s'] / base['median_s']), r
    assert report['notes'] == ['busy'] and report['command'].endswith(f'--docs {out}/docs/benchmarks.md')
    runs = report['profile']['runs']
    assert [(r['model'], r['mode'], r['status']) for r in runs] == [
        (m, mode, 'profiled') for mode in ('infer', 'train') for m in ('l2vit-t', 'swin-t')]
    for r in runs:
        cpu = r['clocks']['cpu']
        assert (cpu['by_direction']['backward'] > 0) == (r['mode'] != 'infer'), r['model']
        assert cpu['top_ops'] and cpu['gemm_products']['flop'] > 0, r['model']
    assert (out / 'benchmark.png').read_bytes().startswith(PNG_MAGIC)
    machine = report['machine']  # the machine by model name, flags and cores, and how loaded it was
    assert machine['cpu'] and set(machine['cpu_flags']) <= set(benchmark.CPU_FLAGS)
    assert machine['cores'] == len(os.sched_getaffinity(0)) and machine['threads'] == torch.get_num_threads()
    assert len(machine['load_average']) == 3


@pytest.mark.parametrize('load, cores, threads, busy', [
    (1.0, 2, 2, True),  # 2 threads on a 2-core machine that something else keeps half busy
    (0.1, 2, 2, False), (1.0, 2, 1, False), (1.8, 2, 1, True), (3.0, 16, 8, False), (9.0, 16, 8, True),
    (None, 2, 2, False)])
def test_a_busy_machine_is_warned_of(load, cores, threads, busy):
    assert (benchmark.busy_warning(load, cores, threads) is not None) == busy


def test_the_warning_is_one_line_on_stderr_as_measuring_starts(caplog):
    with caplog.at_level('WARNING', logger='l2vit.analysis.benchmark'):
        info = benchmark.cpu_info(threads=10 * len(os.sched_getaffinity(0)) + 1)  # more than any machine's free cores
    assert info['busy'] and [r.getMessage() for r in caplog.records] == [f'warning: {info["busy"]}']
    assert '\n' not in info['busy'] and 'torch threads' in info['busy']


def test_the_page_is_rendered_again_from_the_json_alone(run):
    _, report, out, docs = run
    page = docs.read_text(encoding='utf-8')
    assert (docs.parent / 'benchmarks_cpu.png').read_bytes().startswith(PNG_MAGIC)
    for e in report['results']:
        assert f'| {e["size"]} | {e["model"]} | ' in page
    docs.unlink()
    again = run_main(TOOL, '--from-json', out / 'benchmark.json', '--docs', docs)
    assert docs.read_text(encoding='utf-8') == page and 'infer 64x64 ...' not in again.stderr
    both = docs.parent / 'both.md'  # two runs: a section each, each with its own plot
    run_main(TOOL, '--from-json', out / 'benchmark.json', out / 'benchmark.json', '--docs', both)
    assert both.read_text(encoding='utf-8').count('\n## ') == 2 and (docs.parent / 'both_cpu2.png').exists()


def test_over_the_budget_a_model_is_skipped_at_that_size_and_the_larger_ones(tmp_path):
    result = run_main(TOOL, '--sizes', '48', '32', '--modes', 'infer', '--models', 'l2vit-t', '--budget', '1e-9',
                      '--repeats', '1', '--warmup', '1', '--no-flops', '--out-dir', tmp_path)
    entries = json.loads((tmp_path / 'benchmark.json').read_text())['results']
    assert [(e['size'], e['status'], len(e['warmup_s'])) for e in entries] == [('32x32', 'skipped', 1),
                                                                               ('48x48', 'skipped', 0)]
    assert entries[1]['reason'].startswith('at 32x32, a smaller size, its first warm-up step took')
    assert f'note: infer 32x32 l2vit-t: skipped: {entries[0]["reason"]}' in result.stdout


def test_targets_are_met_not_met_or_not_measured():
    tool = runpy.run_path(TOOL, run_name='l2vit_tool_under_test')
    targets = [t for t in tool['TARGETS'] if '800x1333' in str(t)]
    entries = [_entry('l2vit-t', 'train', (800, 1333), 0.8, 700), _entry('swin-t', 'train', (800, 1333), 1.0, 1000),
               _entry('l2vit-t', 'train-cp', (800, 1333), 0.9, 500)]
    rows = {(t[2], t[3].get('mode')): row for t, row in zip(targets, tool['target_rows'](
        dict(results=entries, derived=derive(entries)), targets))}
    assert rows[('time_vs_swin', 'train')][1:] == (0.8, 'met')
    assert rows[('memory_vs_swin', 'train')][1:] == (0.7, 'met')
    assert rows[('ratio', None)][1:] == (500 / 700, 'not met')
    assert rows[('time_vs_swin', 'infer')][1:] == (None, 'not measured')


@pytest.mark.parametrize('argv,message', [
    (['--sizes', '64', '12y'], "argument --sizes: invalid size '12y'"),
    (['--repeats', '0'], '--repeats must be a positive integer, got 0'),
    (['--from-json', 'no/such.json'], 'error: --from-json: cannot read no/such.json'),
    (['--from-json', osp.join(ROOT, 'docs', 'compare_demo.json')], 'is not a benchmark.json'),
    (['--from-json', 'a.json', '--profile'], '--profile, --note and --autocast measure or record a new run'),
    (['--modes', 'detector-train', '--profile'], '--profile profiles the backbone modes'),
    (['--autocast', 'bf16', '--modes', 'detector-train', '--device', 'cpu'],
     '--autocast bf16 with detector-train: the detector iteration runs mmengine\'s AmpOptimWrapper'),
    (['--autocast', 'fp16', '--modes', 'infer', '--onnxruntime', '--device', 'cpu'],
     'l2vit-t+onnxruntime run the exported fp32 file'),
])
def test_bad_options_are_clear_errors_and_write_nothing(tmp_path, argv, message):
    result = run_main(TOOL, *argv, '--out-dir', tmp_path / 'out', check=False)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert not (tmp_path / 'out').exists()


def test_detector_configs_differ_only_in_the_backbone():
    config = str(ROOT / 'configs' / 'maskrcnn_l2vit.py')
    configs = benchmark._detector_configs(config, ['l2vit-t', 'l2vit-t-plain', 'swin-t', 'vit-s'], CPU)
    l2vit, swin = (configs[n].to_dict() for n in ('l2vit-t', 'swin-t'))
    assert (l2vit['model']['backbone']['type'], swin['model']['backbone']['type']) == ('L2ViT', 'SwinTransformer')
    assert l2vit['model']['backbone']['cpu_fast_paths']  # on a CPU, L²ViT as the demo configs run it
    plain = configs['l2vit-t-plain'].to_dict()
    assert not plain['model']['backbone'].pop('cpu_fast_paths') and l2vit['model']['backbone'].pop('cpu_fast_paths')
    assert plain == l2vit  # the same L²ViT-T without its CPU fast paths
    assert l2vit['model']['neck']['in_channels'] == swin['model']['neck']['in_channels'] == [96, 192, 384, 768]
    del l2vit['model']['backbone'], swin['model']['backbone']
    assert l2vit == swin and 'SyncBN' not in json.dumps(l2vit, default=str)


@pytest.mark.slow
def test_detector_train_through_the_tool(tmp_path):
    result = run_main(TOOL, '--modes', 'detector-train', '--sizes', '64x96', '--batch', '1', '--repeats', '1',
                      '--warmup', '1', '--out-dir', tmp_path)
    report = json.loads((tmp_path / 'benchmark.json').read_text())
    assert report['settings']['batches'] == {'detector-train': 1}
    assert report['settings']['detector']['backbones'] == {'l2vit-t': 'L2ViT', 'swin-t': 'SwinTransformer'}
    entries = {e['model']: e for e in report['results']}
    assert sorted(entries) == ['l2vit-t', 'swin-t'] and all(e['memory_bytes'] > 0 for e in entries.values())
    ratio = report['derived']['ratios'][0]
    assert math.isclose(ratio['time_vs_swin'], entries['l2vit-t']['median_s'] / entries['swin-t']['median_s'])
    assert '## detector-train' in result.stdout


# ---------------------------------------------------------------------------------------------------- the GPU script
CUDA_SCRIPT = osp.join(ROOT, 'tools', 'analysis', 'cuda_benchmark.sh')


def _cuda_script(out, **env):
    return subprocess.run(['bash', CUDA_SCRIPT, str(out)], capture_output=True, text=True, cwd=ROOT,
                          env=dict(os.environ, PYTHON=sys.executable, **env))


def test_cuda_benchmark_script_measures_and_renders(tmp_path):
    """Pointed at the CPU with tiny settings: one run per precision with the script's models, and the page."""
    result = _cuda_script(tmp_path, DEVICE='cpu', SIZES='32', MODES='infer', PRECISIONS='fp32', PROFILE='',
                          REPEATS='1', WARMUP='1')
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / 'fp32' / 'benchmark.json').read_text())
    assert (report['settings']['device'], report['settings']['models']) == ('cpu', ['l2vit-t', 'swin-t'])
    assert '(CPU ' in (tmp_path / 'benchmarks.md').read_text()


def test_cuda_benchmark_script_rejects_an_unknown_precision(tmp_path):
    result = _cuda_script(tmp_path, DEVICE='cpu', PRECISIONS='fp8')
    assert result.returncode == 2 and "unknown precision 'fp8'" in result.stderr
