"""torch.compile of the backbone: one graph (no graph breaks), and the same outputs and gradients as eager mode;
inference through the default inductor backend, the training step through AOTAutograd's eager backend (the same
traced forward and backward graphs without inductor's C++ code generation, which took most of a minute here)."""
import pytest
import torch

from l2vit import L2ViT

SMALL = dict(embed_dims=[16, 32, 64, 128], depths=[2, 2, 2, 2], num_heads=[1, 2, 4, 8])


@pytest.mark.slow
def test_compiled_backbone_matches_eager():
    """Inference and a training step, on an input that needs padding at every stage. Eager mode runs the CPU fast
    paths (inference in cache-sized pieces, recomputation in backward); compiled code the plain model."""
    torch.manual_seed(0)
    model = L2ViT(arch=SMALL, window_size=3, drop_path_rate=0.0, out_indices=(0, 1, 2, 3), cpu_fast_paths=True)
    model.init_weights()
    x = torch.randn(2, 3, 61, 93)
    compiled = torch.compile(model, fullgraph=True)

    model.eval()
    with torch.no_grad():
        eager, fast = model(x), compiled(x)
    assert len(fast) == 4
    for e, f in zip(eager, fast):
        assert f.shape == e.shape and torch.isfinite(f).all()
        torch.testing.assert_close(f, e, rtol=1e-4, atol=1e-4)

    model.train()
    grads = []
    for forward in (model, torch.compile(model, fullgraph=True, backend='aot_eager')):
        model.zero_grad(set_to_none=True)
        sum(o.pow(2).mean() for o in forward(x)).backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    assert grads[1].keys() == {n for n, _ in model.named_parameters()}  # every parameter got a gradient
    for name, g in grads[0].items():
        torch.testing.assert_close(grads[1][name], g, rtol=1e-3, atol=1e-4, msg=lambda s: f'{name}: {s}')
