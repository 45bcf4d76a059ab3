"""The linear attention core's hand-written backward (:class:`~l2vit.models.cpu.functions.LinearAttentionFunction`,
used by the CPU variant of the module):
gradients against finite differences and against plain autograd, on both sides of the denominator's clamp, with
non-contiguous inputs, under bf16 autocast, and what it keeps for the backward."""
from typing import Callable, List, Tuple

import pytest
import torch
import torch.utils.checkpoint as cp
from torch import Tensor
from torch.utils.flop_counter import FlopCounterMode

from l2vit.models.attention import LINEAR_ATTENTION_DENOM_MIN, LinearAttention
from l2vit.models.cpu.functions import LinearAttentionFunction
from l2vit.models.cpu.modules import CPULinearAttention

#: The core of the CPU variant: the Function where autograd records on the CPU, the plain ops elsewhere.
fast_core = CPULinearAttention.core

B, N, H, D = 2, 12, 2, 3
REGIMES = ['clamped', 'unclamped', 'mixed']


def plain_linear_attention(q: Tensor, k: Tensor, v: Tensor, temperature: Tensor) -> Tensor:
    """The core as plain autograd ops (the formulation before the Function): float32 or float64, no autocast."""
    dtype = torch.promote_types(q.dtype, torch.float32)
    with torch.autocast(device_type=q.device.type, enabled=False):
        qr, kr, v = torch.relu(q.to(dtype)), torch.relu(k.to(dtype)), v.to(dtype)
        kv = torch.einsum('bnhd,bnhe->bhde', kr, v) * temperature.to(dtype)
        denom = torch.einsum('bnhd,bhd->bnh', qr, kr.sum(dim=1)).clamp_min(LINEAR_ATTENTION_DENOM_MIN)
        return torch.einsum('bnhd,bhde->bnhe', qr, kv) / denom.unsqueeze(-1)


def denominators(q: Tensor, k: Tensor) -> Tensor:
    """relu(q) . sum_n relu(k), before the clamp: (B, N, heads)."""
    return torch.einsum('bnhd,bhd->bnh', torch.relu(q), torch.relu(k).sum(dim=1))


def make_qkv(regime: str, seed: int = 0, dtype: torch.dtype = torch.float64) -> Tensor:
    """A (B, N, 3, heads, d) leaf whose ``unbind(2)`` gives q, k, v in ``regime``: every denominator below the
    clamp, every one above it, or both within one call."""
    g = torch.Generator().manual_seed(seed)
    qkv = torch.randn(B, N, 3, H, D, generator=g, dtype=torch.float64)
    if regime == 'clamped':
        qkv[:, :, :2] *= 0.5
    elif regime == 'unclamped':
        qkv[:, :, :2, :, 0] = qkv[:, :, :2, :, 0].abs() + 1  # a positive feature in every token
        qkv[:, :, :2] *= 5
    else:
        qkv[:, :, 1] *= 4
        qkv[:, :, 0] *= torch.linspace(0.01, 6, N, dtype=torch.float64).view(1, N, 1, 1)
    z = denominators(qkv[:, :, 0], qkv[:, :, 1])
    expect = {'clamped': z.max() < 100, 'unclamped': z.min() > 100, 'mixed': z.min() < 100 < z.max()}[regime]
    assert expect, (regime, z.min(), z.max())
    return qkv.to(dtype).requires_grad_()


def make_temperature(dtype: torch.dtype = torch.float64, requires_grad: bool = True) -> Tensor:
    return torch.tensor([0.7, 1.3], dtype=dtype).view(H, 1, 1).requires_grad_(requires_grad)


def saved_tensors_of(fn: Callable[[], Tensor]) -> Tuple[Tensor, List[Tensor]]:
    """``fn()`` and every tensor autograd saved for its backward while it ran."""
    saved = []

    def pack(t: Tensor) -> Tensor:
        saved.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return out, saved


def held_bytes(saved: List[Tensor]) -> int:
    """Bytes of the distinct storages the saved tensors keep alive."""
    return sum({t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in saved}.values())


# ---------------------------------------------------------------------------------------------------- gradcheck
@pytest.mark.parametrize('regime', REGIMES)
@pytest.mark.parametrize('layout', ['unbind_views', 'contiguous'])
def test_gradcheck(regime, layout):
    qkv, temperature = make_qkv(regime), make_temperature()

    def core(qkv: Tensor, temperature: Tensor) -> Tensor:
        q, k, v = qkv.unbind(2) if layout == 'unbind_views' else (t.contiguous() for t in qkv.unbind(2))
        assert q.is_contiguous() is (layout == 'contiguous')
        return LinearAttentionFunction.apply(q, k, v, temperature)

    assert torch.autograd.gradcheck(core, (qkv, temperature))


def test_gradcheck_without_temperature_grad():
    qkv, temperature = make_qkv('mixed', seed=1), make_temperature(requires_grad=False)
    assert torch.autograd.gradcheck(lambda x: LinearAttentionFunction.apply(*x.unbind(2), temperature), (qkv, ))


# ---------------------------------------------------------------------------------------------------- against autograd
def grads(core: Callable[..., Tensor], qkv: Tensor, temperature: Tensor, upstream: Tensor) -> Tuple[Tensor, ...]:
    out = core(*qkv.unbind(2), temperature)
    inputs = (qkv, temperature) if temperature.requires_grad else (qkv, )
    return (out, ) + torch.autograd.grad(out, inputs, upstream)


@pytest.mark.parametrize('regime', REGIMES)
def test_equals_plain_autograd_float64(regime):
    qkv, temperature = make_qkv(regime, seed=2), make_temperature()
    upstream = torch.randn(B, N, H, D, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    new = grads(fast_core, qkv, temperature, upstream)
    old = grads(plain_linear_attention, qkv, temperature, upstream)
    assert torch.equal(new[0], old[0])  # the same forward ops
    for a, b in zip(new[1:], old[1:]):
        assert a.shape == b.shape and a.dtype == b.dtype
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    assert new[2].abs().min() > 0  # the temperature gradient is summed over the batch, every head has one


def test_ties_follow_autograd():
    """Ties at the clamp (q . sum k == 100 exactly) and ReLU inputs of exactly 0 get what torch's own backward of
    ``clamp_min`` and ``relu`` gives them."""
    q = torch.tensor([[1, 0], [0, 0], [-1, 2], [0.5, 0], [2, -3]], dtype=torch.float64)
    k = torch.tensor([[50, 0], [50, 40], [0, 0], [-3, 0], [0, -2]], dtype=torch.float64)
    v = torch.randn(5, 2, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    q, k, v = (t.view(1, 5, 1, 2).requires_grad_() for t in (q, k, v))
    temperature = torch.full((1, 1, 1), 0.5, dtype=torch.float64, requires_grad=True)
    assert denominators(q, k).flatten().tolist() == [100, 0, 80, 50, 200]
    upstream = torch.randn(1, 5, 1, 2, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    inputs = (q, k, v, temperature)
    new = torch.autograd.grad(LinearAttentionFunction.apply(*inputs), inputs, upstream)
    old = torch.autograd.grad(plain_linear_attention(*inputs), inputs, upstream)
    for a, b in zip(new, old):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    # The tie: the first token's gradient has no share through the denominator, only relu(q) @ KV / 100's.
    kv = torch.einsum('nd,ne->de', torch.relu(k[0, :, 0]), v[0, :, 0]) * 0.5
    torch.testing.assert_close(new[0][0, 0, 0], torch.tensor([1.0, 0.0], dtype=torch.float64) *
                               (upstream[0, 0, 0] @ kv.t()) / 100, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize('needed', ['q', 'k', 'v', 't', 'qkv', 'kt'])
def test_only_the_needed_gradients(needed):
    """Each subset of inputs that require grad gets autograd's gradients; the others cost no work."""
    qkv = make_qkv('mixed', seed=6).detach()
    inputs = [t.clone().requires_grad_(name in needed) for name, t in zip('qkv', qkv.unbind(2))]
    inputs.append(make_temperature(requires_grad='t' in needed))
    wanted = [t for t in inputs if t.requires_grad]
    upstream = torch.randn(B, N, H, D, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    out = fast_core(*inputs)
    assert type(out.grad_fn).__name__ == 'LinearAttentionFunctionBackward'
    with FlopCounterMode(display=False) as counter:
        new = torch.autograd.grad(out, wanted, upstream)
    old = torch.autograd.grad(plain_linear_attention(*inputs), wanted, upstream)
    for a, b in zip(new, old):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    out = LinearAttentionFunction.apply(*[t.detach().requires_grad_() for t in inputs])
    with FlopCounterMode(display=False) as all_counter:
        out.backward(upstream)
    # The backward's matrix products: fewer where a gradient of q, k or v is not asked for (the temperature's own
    # gradient is element-wise, from products that q, k and v need anyway).
    if set('qkv') <= set(needed):
        assert all_counter.get_total_flops() == counter.get_total_flops()
    else:
        assert all_counter.get_total_flops() > counter.get_total_flops() > 0


def test_low_precision_inputs_get_gradients_in_their_dtype():
    qkv = make_qkv('mixed', seed=8, dtype=torch.bfloat16)
    temperature = make_temperature(torch.float32)
    upstream = torch.randn(B, N, H, D, generator=torch.Generator().manual_seed(9))
    out = LinearAttentionFunction.apply(*qkv.unbind(2), temperature)
    assert out.dtype == torch.float32
    g_qkv, g_t = torch.autograd.grad(out, (qkv, temperature), upstream)
    assert g_qkv.dtype == torch.bfloat16 and g_t.dtype == torch.float32
    # Against float64 autograd on the same (bf16-valued) inputs.
    ref = grads(plain_linear_attention, qkv.detach().double().requires_grad_(), temperature.detach().double()
                .requires_grad_(), upstream.double())
    torch.testing.assert_close(out.double(), ref[0], rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(g_qkv.double(), ref[1], rtol=1e-2, atol=1e-3)  # bf16 rounding of the gradient
    torch.testing.assert_close(g_t.double(), ref[2], rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------------------------- dispatch
def test_plain_ops_where_autograd_is_not_needed():
    qkv, temperature = make_qkv('mixed', seed=10, dtype=torch.float32), make_temperature(torch.float32)
    with_grad = fast_core(*qkv.unbind(2), temperature)
    assert type(with_grad.grad_fn).__name__ == 'LinearAttentionFunctionBackward'
    with torch.no_grad():
        inference = fast_core(*qkv.unbind(2), temperature)
    assert inference.grad_fn is None and torch.equal(inference, with_grad)
    # A TorchScript trace (ONNX export, FLOP counting) records the plain ops even when autograd is on.
    graph = torch.jit.trace(fast_core, (*qkv.unbind(2), temperature), check_trace=False).graph
    kinds = [node.kind() for node in graph.nodes()]
    assert kinds.count('aten::einsum') == 3 and 'prim::PythonOp' not in kinds, kinds


# ---------------------------------------------------------------------------------------------------- in the module
def module_run(cls: type, autocast: bool) -> Tuple[Tensor, List[Tensor], dict]:
    """Output, saved tensors and gradients of a LinearAttention (``cls``: the plain module or its CPU variant)."""
    torch.manual_seed(11)
    module = cls(32, 2)
    x = torch.randn(2, 64, 32, requires_grad=True)
    with torch.autocast('cpu', dtype=torch.bfloat16, enabled=autocast):
        out, saved = saved_tensors_of(lambda: module(x))
    out.float().pow(2).sum().backward()
    return out, saved, dict(module.named_parameters(), x=x)


@pytest.mark.parametrize('autocast', [False, True], ids=['float32', 'bf16_autocast'])
def test_module_against_plain_core(autocast):
    new_out, new_saved, new = module_run(CPULinearAttention, autocast)
    old_out, old_saved, old = module_run(LinearAttention, autocast)
    assert torch.equal(new_out, old_out)
    tol = dict(rtol=2e-2, atol=2e-3) if autocast else dict(rtol=1e-5, atol=1e-6)
    for name, p in new.items():
        torch.testing.assert_close(p.grad, old[name].grad, **tol, msg=lambda s: f'{name}: {s}')
    assert held_bytes(new_saved) < held_bytes(old_saved), (held_bytes(new_saved), held_bytes(old_saved))
    if autocast:
        token_sized = 2 * 64 * 16  # a (B, N, heads, head_dim) tensor and larger
        assert all(t.dtype == torch.bfloat16 for t in new_saved if t.numel() >= token_sized)
        assert any(t.dtype == torch.float32 for t in old_saved if t.numel() >= token_sized)


def test_function_saves_only_its_inputs():
    """Under autocast the Function keeps q, k, v as the bf16 views they are, and the temperature: no float32 copy,
    no ReLU output, no numerator."""
    qkv = make_qkv('mixed', seed=12, dtype=torch.bfloat16)
    q, k, v = qkv.unbind(2)
    temperature = make_temperature(torch.float32)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        _, saved = saved_tensors_of(lambda: fast_core(q, k, v, temperature))
        _, plain_saved = saved_tensors_of(lambda: plain_linear_attention(q, k, v, temperature))
    assert len(saved) == 4
    for got, given in zip(saved, (q, k, v, temperature)):
        assert got.dtype == given.dtype and got.shape == given.shape and got.data_ptr() == given.data_ptr()
    assert held_bytes(saved) == qkv.untyped_storage().nbytes() + temperature.untyped_storage().nbytes()
    assert held_bytes(plain_saved) > 2 * held_bytes(saved)


def test_non_reentrant_checkpoint():
    torch.manual_seed(13)
    module = CPULinearAttention(32, 2).double()
    x = torch.randn(2, 64, 32, dtype=torch.float64, requires_grad=True)
    results = []
    for run in (module, lambda t: cp.checkpoint(module, t, use_reentrant=False)):
        module.zero_grad(set_to_none=True)
        x.grad = None
        out = run(x)
        out.pow(2).sum().backward()
        results.append([out] + [t.grad.clone() for t in (x, *module.parameters())])
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
