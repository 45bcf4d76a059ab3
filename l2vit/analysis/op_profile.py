"""Where one step's time goes: ``torch.profiler`` self times per op and direction, and the matrix products'
operations. An op is backward when it starts inside ``BACKWARD_MARK``'s time range (``loss.backward()``), so that
recomputed (checkpointed) forward ops count as backward: that is when they run."""
import collections
import os
from typing import Any, Callable, Dict, Sequence

__all__ = ['FORWARD_MARK', 'BACKWARD_MARK', 'TOP_OPS', 'PRODUCTS', 'summarize_events', 'profile_step']

FORWARD_MARK = 'l2vit_benchmark::forward'
BACKWARD_MARK = 'l2vit_benchmark::backward'
DIRECTIONS = ('forward', 'backward')
#: How many ops the record lists per step (the largest by self time).
TOP_OPS = 15
#: The matrix products whose operations ``torch.profiler``'s ``with_flops`` counts (2 per multiply-add, from the
#: recorded shapes); ``matmul`` and ``linear`` call one of these.
PRODUCTS = ('aten::mm', 'aten::addmm', 'aten::bmm', 'aten::baddbmm')


def summarize_events(events: Sequence[Any], clock: str = 'cpu', top: int = TOP_OPS) -> Dict[str, Any]:
    """Self time (ms) of one profiled step's CPU-side events (``clock`` 'cuda': their kernels' self device time),
    summed by torch's ``FunctionEventAvg`` per op and direction: ``total_ms``, ``by_direction``, the ``top`` largest
    ops (``top_ops``) and, with ``with_flops``, ``gemm_products``: the matrix products' (:data:`PRODUCTS`)
    operations, time, calls and rate."""
    import torch
    from torch.autograd.profiler_util import FunctionEventAvg
    marks = [e.time_range for e in events if e.name == BACKWARD_MARK]
    ops: Dict[tuple, Any] = collections.defaultdict(FunctionEventAvg)
    products = dict(flop=0, ms=0.0, calls=0)
    for e in events:
        if e.device_type != torch.autograd.DeviceType.CPU or e.is_async:
            continue
        ops[(e.key, DIRECTIONS[any(m.start <= e.time_range.start <= m.end for m in marks)])].add(e)
        if e.key in PRODUCTS and e.flops:
            ms = (e.self_cpu_time_total if clock == 'cpu' else e.self_device_time_total) / 1e3
            products.update(flop=products['flop'] + e.flops, ms=products['ms'] + ms, calls=products['calls'] + 1)
    rows = [dict(op=name, direction=direction, calls=avg.count,
                 ms=(avg.self_cpu_time_total if clock == 'cpu' else avg.self_device_time_total) / 1e3)
            for (name, direction), avg in ops.items()]
    total = sum(r['ms'] for r in rows)
    for r in rows:
        r['share'] = 100 * r['ms'] / total if total else None
    seconds = products['ms'] / 1e3
    return dict(clock=clock, total_ms=total,
                by_direction={d: sum(r['ms'] for r in rows if r['direction'] == d) for d in DIRECTIONS},
                top_ops=sorted(rows, key=lambda r: (-r['ms'], r['op']))[:top],
                gemm_products=dict(products, flop_per_s=products['flop'] / seconds if seconds else None)
                if products['calls'] else None)


def profile_step(step: Callable[[], None], device: Any, top: int = TOP_OPS) -> Dict[str, Any]:
    """Run ``step`` (warmed up, marked) once under ``torch.profiler.profile`` with shapes and flops recorded: its
    ``wall_ms`` (profiler overhead included), ``events`` and ``clocks`` (``cpu``, and ``cuda`` on a GPU:
    :func:`summarize_events`)."""
    import torch
    from torch.profiler import ProfilerActivity, profile
    from torch.utils.benchmark import timer  # synchronises the accelerator before reading the clock
    os.environ.setdefault('KINETO_LOG_LEVEL', '6')  # no profiler progress lines or a CPU machine's 'ERROR'
    clocks = ['cpu'] + (['cuda'] if device.type == 'cuda' else [])
    with profile(activities=[getattr(ProfilerActivity, c.upper()) for c in clocks], record_shapes=True,
                 with_flops=True) as prof:
        begin = timer()
        step()
        wall = timer() - begin
    events = prof.events()
    return dict(wall_ms=wall * 1e3, events=sum(1 for e in events if e.device_type == torch.autograd.DeviceType.CPU),
                clocks={clock: summarize_events(events, clock, top) for clock in clocks})
