"""Schemas of the torch.ops.unlearn ops.

The compiled library declares the same strings in csrc/unlearn.cpp; when it is
missing, these are registered with the pure-PyTorch twins as kernels. A test
checks that the two agree.
"""

SCHEMAS: dict[str, str] = {
    "nearest_neighbor": "nearest_neighbor(Tensor x, int seed=0) -> Tensor",
    "codec": "codec(Tensor y, Tensor z, Tensor? x=None, int seed=0) -> Tensor",
    "codec_select": (
        "codec_select(Tensor y, Tensor features, int max_select, bool stop_early=True, "
        "int seed=0, int max_cache_bytes=1073741824) -> (Tensor, Tensor)"
    ),
    "codec_step": (
        "codec_step(Tensor y, Tensor candidates, Tensor selected, int row_begin, int row_end, "
        "int seed=0, Tensor? cache=None) -> (Tensor, Tensor)"
    ),
    "perturb": "perturb(Tensor x, int copies, float sigma, int seed=0) -> Tensor",
    "channel_means": "channel_means(Tensor act, Tensor(a!) out, int column) -> ()",
    "block_solve": "block_solve(Tensor[] blocks, Tensor g, float damping, bool[] low_rank) -> Tensor",
}
