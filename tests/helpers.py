"""Helpers shared by the tests."""
import math

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


def randomize_(model: nn.Module, seed: int) -> nn.Module:
    """Give every parameter and every BN buffer a random, non-default value (deterministic for ``seed``)."""
    g = torch.Generator().manual_seed(seed)

    def rn(t: torch.Tensor) -> torch.Tensor:
        return torch.randn(t.shape, generator=g, dtype=torch.float64).to(t.dtype)

    def ru(t: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
        return (lo + (hi - lo) * torch.rand(t.shape, generator=g, dtype=torch.float64)).to(t.dtype)

    done = set()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                fan_in = m.weight[0].numel()
                m.weight.copy_(rn(m.weight) / math.sqrt(fan_in))
                m.bias.copy_(0.1 * rn(m.bias))
                done.update([id(m.weight), id(m.bias)])
            elif isinstance(m, nn.LayerNorm):
                m.weight.copy_(1 + 0.2 * rn(m.weight))
                m.bias.copy_(0.1 * rn(m.bias))
                done.update([id(m.weight), id(m.bias)])
            elif isinstance(m, _BatchNorm):
                m.weight.copy_(1 + 0.2 * rn(m.weight))
                m.bias.copy_(0.1 * rn(m.bias))
                m.running_mean.copy_(0.2 * rn(m.running_mean))
                m.running_var.copy_(ru(m.running_var, 0.5, 1.5))
                m.num_batches_tracked.fill_(int(torch.randint(1, 1000, (1,), generator=g)))
                done.update([id(m.weight), id(m.bias)])
        for name, p in model.named_parameters():
            if id(p) in done:
                continue
            assert name.endswith('temperature'), f'randomize_ does not know parameter {name}'
            p.copy_(ru(p, 0.1, 1.0))
    return model
