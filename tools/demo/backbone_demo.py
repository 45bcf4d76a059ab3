#!/usr/bin/env python
"""A first look at L²ViT: build the released variants, count parameters and run them on an image-sized input.

    python tools/demo/backbone_demo.py [--shape H W]
"""
import argparse
import time

import torch

from l2vit import L2ViT


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--shape', type=int, nargs=2, default=(480, 640), metavar=('H', 'W'))
    args = parser.parse_args()
    x = torch.randn(1, 3, *args.shape)
    print(f'input {tuple(x.shape)}; outputs are (C, H, W) at strides 4, 8, 16, 32')
    for arch in ('tiny', 'small', 'base'):
        model = L2ViT(arch=arch).eval()
        model.init_weights()
        params = sum(p.numel() for p in model.parameters()) / 1e6
        with torch.inference_mode():
            start = time.perf_counter()
            outs = model(x)
            elapsed = time.perf_counter() - start
        shapes = ', '.join(str(tuple(o.shape[1:])) for o in outs)
        print(f'L2ViT-{arch[0].upper()}: {params:6.2f} M backbone parameters, {elapsed:5.2f} s on CPU: {shapes}')


if __name__ == '__main__':
    main()
