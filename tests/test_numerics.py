"""Robust numerics: mixed precision at detection resolution, extreme input sizes, an all-zero image."""
import pytest
import torch

from l2vit import L2ViT
from l2vit.models.attention import LINEAR_ATTENTION_DENOM_MIN, linear_attention


def finite(tensors) -> bool:
    return all(torch.isfinite(t).all() for t in tensors)


@pytest.mark.slow
@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
def test_mixed_precision_at_1333x800_is_finite(dtype):
    """Σk over the ~66k tokens of stage 0 would overflow fp16; the linear attention runs in fp32 under autocast.
    (A narrow arch: the token counts, which decide overflow, are those of any L2ViT at this size; fp16 on CPU is
    slow.)"""
    torch.manual_seed(0)
    model = L2ViT(arch=dict(embed_dims=[32, 64, 128, 256], depths=[2, 2, 2, 2], num_heads=[1, 2, 4, 8]),
                  drop_path_rate=0.1)
    model.init_weights()
    model.train()
    x = torch.randn(1, 3, 800, 1333)
    with torch.autocast('cpu', dtype=dtype):
        outs = model(x)
        loss = sum(o.float().pow(2).mean() for o in outs)
    loss.backward()
    assert [tuple(o.shape[-2:]) for o in outs] == [(200, 334), (100, 167), (50, 84), (25, 42)]
    assert finite(outs) and torch.isfinite(loss)
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert len(grads) > 0 and finite(grads)


def test_linear_attention_core_stays_fp32_under_fp16_autocast():
    # Values whose sums over many tokens exceed fp16's range (65504): the core must not overflow.
    q = torch.full((1, 70000, 1, 4), 2.0, dtype=torch.float16)
    k = torch.full((1, 70000, 1, 4), 2.0, dtype=torch.float16)
    v = torch.ones((1, 70000, 1, 4), dtype=torch.float16)
    with torch.autocast('cpu', dtype=torch.float16):
        out = linear_attention(q, k, v, torch.ones(1, 1, 1))
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    # kv = 70000 * 2 * 1 per entry, q·kv = 4 * 2 * 140000, denominator q·Σk = 4 * 2 * 140000: the ratio is 1.
    torch.testing.assert_close(out, torch.ones_like(out))


@pytest.mark.slow
@pytest.mark.parametrize('size', [(32, 32), (2048, 2048)])
def test_extreme_input_sizes(size):
    """The token counts, which decide the sums of the linear attention, are those of any L2ViT at this size (a narrow
    arch: the full widths only cost time)."""
    model = L2ViT(arch=dict(embed_dims=[32, 64, 128, 256], depths=[2, 2, 2, 2], num_heads=[1, 2, 4, 8])).eval()
    model.init_weights()
    with torch.inference_mode():
        outs = model(torch.randn(1, 3, *size))
    strides = (4, 8, 16, 32)
    assert [tuple(o.shape[-2:]) for o in outs] == [(-(-size[0] // s), -(-size[1] // s)) for s in strides]
    assert finite(outs)


def test_all_zero_image_has_no_nan():
    """A blank image makes many tokens identical; q·Σk can be 0 and the clamp at 100 keeps the division finite."""
    model = L2ViT(arch=dict(embed_dims=[16, 32, 64, 128], depths=[2, 2, 2, 2], num_heads=[1, 2, 4, 8]))
    model.init_weights()
    model.train()
    outs = model(torch.zeros(2, 3, 64, 96))
    sum(o.pow(2).mean() for o in outs).backward()
    assert finite(outs)
    assert finite([p.grad for p in model.parameters() if p.grad is not None])
    # And with relu(q) = 0 exactly: the denominator is the clamp, the output is 0, not NaN.
    zeros = torch.zeros(1, 5, 1, 4)
    out = linear_attention(zeros, zeros, torch.randn(1, 5, 1, 4), torch.ones(1, 1, 1))
    assert torch.equal(out, torch.zeros_like(out)) and LINEAR_ATTENTION_DENOM_MIN == 100.0
