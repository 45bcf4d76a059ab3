from .attention import LinearAttention, WindowAttention, linear_attention, window_partition, window_reverse
from .backbone import L2ViT
from .blocks import LinearGlobalBlock, LocalWindowBlock
from .cpu import use_cpu_fast_paths
from .layers import ConditionalPositionEncoding, ConvStem, Downsample, LocalConcentration, Mlp, StemEmbed

__all__ = [
    'L2ViT', 'LocalWindowBlock', 'LinearGlobalBlock', 'WindowAttention', 'LinearAttention', 'linear_attention',
    'window_partition', 'window_reverse', 'ConditionalPositionEncoding', 'LocalConcentration', 'Mlp', 'ConvStem',
    'StemEmbed', 'Downsample', 'use_cpu_fast_paths'
]
