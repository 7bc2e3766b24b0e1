"""FOCI forward selection (`codec_select`) across processes with torch.distributed.

Every rank passes the same `y`, and either the same `features` (a rank reads
only its shard) or, with ``columns=p``, only its own block of columns
(`column_block`), so that no rank holds the whole matrix:

- ``shard="columns"``: rank r scores the candidate columns of block r over all
  rows; one all-reduce of a single int64 (score and column id packed so that
  the maximum is the highest score, ties to the lowest id) picks the winner,
  whose owner broadcasts the column (n values) for every rank's D_S cache.
- ``shard="rows"``: rank r owns a block of rows of D_S (O(n^2 / ranks)
  memory), scores every candidate over those rows, and one all-reduce of the
  p partial sums (and the S-neighbour sum) assembles the statistic.
- ``shard="both"``: ranks on a rows x columns grid; partial sums are reduced
  within each column group, then the winner is picked as in "columns".

Sums of ranks are integers, so the picks and scores are exactly those of the
single-process `unlearn.ops.codec_select` for the same seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import torch
import torch.distributed as dist

from . import ops
from .ops.ranks import exact_sum, max_ranks
from .ops.reference.codec_select import check_codec_select

SHARDS = ("columns", "rows", "both")


@dataclass
class Traffic:
    """Bytes this rank sent into collectives, per kind, and the bytes it held for D_S."""

    bytes: dict[str, int] = field(default_factory=dict)
    cache_bytes: int = 0
    steps: int = 0

    def add(self, kind: str, tensor: torch.Tensor) -> None:
        self.bytes[kind] = self.bytes.get(kind, 0) + tensor.numel() * tensor.element_size()


def grid_shape(ranks: int) -> tuple[int, int]:
    """(row groups, column groups) of the most square grid with `ranks` cells."""
    rows = max(d for d in range(1, math.isqrt(ranks) + 1) if ranks % d == 0)
    return rows, ranks // rows


def block(size: int, parts: int, index: int) -> tuple[int, int]:
    """[start, stop) of part `index` of `parts` near-equal contiguous parts of range(size)."""
    return size * index // parts, size * (index + 1) // parts


@dataclass
class _Layout:
    rows: tuple[int, int]
    columns: tuple[int, int]
    row_groups: int  # how many blocks the rows are split into
    column_group: Optional[dist.ProcessGroup]  # ranks sharing this rank's columns (None: the default group)
    owners: list[int]  # global rank that broadcasts each column block


def _grid(shard: str, world: int, grid: Optional[tuple[int, int]]) -> tuple[int, int]:
    if shard not in SHARDS:
        raise ValueError(f"shard must be one of {', '.join(map(repr, SHARDS))}, got {shard!r}")
    if shard == "columns":
        shape = (1, world)
    elif shard == "rows":
        shape = (world, 1)
    else:
        shape = grid if grid is not None else grid_shape(world)
        if len(shape) != 2 or shape[0] * shape[1] != world or min(shape) < 1:
            raise ValueError(f"grid must be (row groups, column groups) with a product of {world} ranks, got {grid}")
    return shape


def column_block(
    p: int, *, shard: str = "columns", group: Optional[dist.ProcessGroup] = None, grid: Optional[tuple[int, int]] = None
) -> tuple[int, int]:
    """[start, stop) of the p columns this rank scores under `shard` (and
    `grid`): the block to pass as `features` with `columns=p`."""
    _, column_groups = _grid(shard, dist.get_world_size(group), grid)
    return block(p, column_groups, dist.get_rank(group) % column_groups)


def _layout(shard: str, n: int, p: int, group: Optional[dist.ProcessGroup], grid: Optional[tuple[int, int]]) -> _Layout:
    world, rank = dist.get_world_size(group), dist.get_rank(group)
    row_groups, column_groups = _grid(shard, world, grid)
    a, b = divmod(rank, column_groups)
    global_rank = lambda r: dist.get_global_rank(group, r) if group is not None else r  # noqa: E731
    column_group = None
    if shard == "both" and row_groups > 1:
        column_group = _column_groups(group, row_groups, column_groups, global_rank)[b]
    elif shard == "rows":
        column_group = group
    owners = [global_rank(c) for c in range(column_groups)]  # row group 0 of each column block
    return _Layout(block(n, row_groups, a), block(p, column_groups, b), row_groups, column_group, owners)


_COLUMN_GROUPS: dict[tuple[int, int, int], list[dist.ProcessGroup]] = {}


def _column_groups(group, row_groups: int, column_groups: int, global_rank) -> list[dist.ProcessGroup]:
    """One process group per column block (its ranks on every row block),
    made once per (group, grid): every rank creates every subgroup, in the
    same order, as new_group requires."""
    key = (id(group), row_groups, column_groups)
    if key not in _COLUMN_GROUPS:
        _COLUMN_GROUPS[key] = [
            dist.new_group([global_rank(r * column_groups + c) for r in range(row_groups)])
            for c in range(column_groups)
        ]
    return _COLUMN_GROUPS[key]


def codec_select(
    y: torch.Tensor,
    features: torch.Tensor,
    max_select: int,
    *,
    group: Optional[dist.ProcessGroup] = None,
    shard: str = "columns",
    grid: Optional[tuple[int, int]] = None,
    stop_early: bool = True,
    seed: int = 0,
    max_cache_bytes: int = 1 << 30,
    columns: Optional[int] = None,
    traffic: Optional[Traffic] = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`unlearn.ops.codec_select(y, features, max_select, stop_early=...,
    seed=..., max_cache_bytes=...)` computed by the ranks of `group` (the default
    group when None), each on its shard; every rank returns the same (order,
    scores). `max_cache_bytes` bounds the D_S rows each rank caches (above it
    they are recomputed per step). `grid` fixes the (rows, columns) shape for
    shard="both" (default: the most square one). With `columns` (the total
    column count p), `features` is only this rank's `column_block`. Pass a
    `Traffic` to count the bytes this rank sends."""
    p = _check_request(y, features, max_select, max_cache_bytes, columns, shard, group, grid)
    n = features.shape[0]
    layout = _layout(shard, n, p, group, grid)
    traffic = traffic if traffic is not None else Traffic()
    (r0, r1), (c0, c1) = layout.rows, layout.columns
    up, down = max_ranks(y)
    sum_r, sum_l2, den_u = exact_sum(up), exact_sum(down * down), exact_sum(down * (n - down))
    use_cache = (r1 - r0) * n * features.element_size() <= max_cache_bytes
    cache = torch.zeros(r1 - r0, n, dtype=features.dtype, device=features.device) if use_cache else None
    traffic.cache_bytes = cache.numel() * cache.element_size() if use_cache else 0
    local = features if columns is not None else features[:, c0:c1]
    own = local if c1 > c0 else features.new_zeros(n, 1)  # a rank without columns still sums S-neighbours
    picked: list[int] = []
    selected = features.new_empty((n, 0))
    order = torch.full((max_select,), -1, dtype=torch.int64, device=features.device)
    scores = torch.full((max_select,), float("nan"), dtype=features.dtype, device=features.device)
    for step in range(max_select):
        num, self_sum = _step_sums(y, own, selected, layout, seed, cache if picked else None, traffic)
        if picked and sum_r - self_sum == 0:  # y is already a function of the selected columns
            break
        winner, winner_num = _pick(num, picked, p, layout, shard, group, traffic)
        # As the kernels do: integer numerator and denominator, each rounded to a double.
        if picked:
            t = float(winner_num - self_sum) / float(sum_r - self_sum)
        else:
            t = float(n * winner_num - sum_l2) / float(den_u)
        if stop_early and t <= 0:
            break
        order[step], scores[step] = winner, t
        picked.append(winner)
        column = _winner_column(local, winner, p, layout, shard, group, traffic)
        selected = torch.cat([selected, column[:, None]], dim=1)
        if cache is not None:
            cache += (column[r0:r1, None] - column[None, :]).square()
        traffic.steps += 1
    return order, scores


def _check_request(
    y: torch.Tensor,
    features: torch.Tensor,
    max_select: int,
    max_cache_bytes: int,
    columns: Optional[int],
    shard: str,
    group: Optional[dist.ProcessGroup],
    grid: Optional[tuple[int, int]],
) -> int:
    """Checks the arguments (and this rank's block of columns); returns p."""
    if not dist.is_available() or not dist.is_initialized():
        raise ValueError("group: torch.distributed is not initialised (call init_process_group first)")
    p = features.shape[1] if columns is None else columns
    if columns is not None:
        c0, c1 = column_block(p, shard=shard, group=group, grid=grid)
        if features.dim() != 2 or features.shape[1] != c1 - c0:
            raise ValueError(
                f"features: with columns={p} this rank takes its block [{c0}, {c1}) of {c1 - c0} columns, "
                f"got shape {tuple(features.shape)}"
            )
    check_codec_select(y, features, max_select, max_cache_bytes, columns)
    n = features.shape[0]
    if n * n * (p + 1) >= 2**62:
        raise ValueError(f"features: n = {n} and p = {p} are too large to pack a score and a column id in one int64")
    return p


def _step_sums(
    y: torch.Tensor,
    own: torch.Tensor,
    selected: torch.Tensor,
    layout: _Layout,
    seed: int,
    cache: Optional[torch.Tensor],
    traffic: Traffic,
) -> tuple[torch.Tensor, int]:
    """This rank's candidate sums and the S-neighbour sum, over all rows:
    its own row block, reduced within its column group when rows are split."""
    (r0, r1), (c0, c1) = layout.rows, layout.columns
    num, self_sum = ops.codec_step(y, own, selected, r0, r1, seed=seed, cache=cache)
    if c1 <= c0:
        num = num[:0]
    if layout.row_groups > 1:
        sums = torch.cat([num, self_sum.view(1)])
        traffic.add("all_reduce partial sums", sums)
        dist.all_reduce(sums, group=layout.column_group)
        num, self_sum = sums[:-1], sums[-1]
    return num, int(self_sum)


def _pick(
    num: torch.Tensor,
    picked: list[int],
    p: int,
    layout: _Layout,
    shard: str,
    group: Optional[dist.ProcessGroup],
    traffic: Traffic,
) -> tuple[int, int]:
    """(column, sum) of the best untaken column over every rank: one
    all-reduce of score and column id packed in an int64 (ties to the lowest
    id); with shard="rows" every rank already holds every column's sum."""
    best_num, best_j = _local_best(num, layout.columns[0], picked)
    if shard == "rows":
        return best_j, best_num
    pack = p + 1
    key = torch.tensor([best_num * pack + (p - best_j) if best_j >= 0 else -1], device=num.device)
    traffic.add("all_reduce pick", key)
    dist.all_reduce(key, op=dist.ReduceOp.MAX, group=group)
    winner_num, winner = divmod(int(key), pack)
    return p - winner, winner_num


def _local_best(num: torch.Tensor, c0: int, picked: list[int]) -> tuple[int, int]:
    """(score, column) of the best untaken column of this block; lowest column on ties; (-1, -1) if none."""
    scores = num.clone()
    taken = [j - c0 for j in picked if 0 <= j - c0 < len(num)]
    scores[taken] = -1
    if len(scores) == 0 or int(scores.max()) < 0:
        return -1, -1
    offset = int(torch.nonzero(scores == scores.max())[0])
    return int(scores[offset]), c0 + offset


def _winner_column(
    local: torch.Tensor,
    winner: int,
    p: int,
    layout: _Layout,
    shard: str,
    group: Optional[dist.ProcessGroup],
    traffic: Traffic,
) -> torch.Tensor:
    """The picked column on every rank: from the local columns in "rows" mode
    (which hold them all), else broadcast by the rank that owns it."""
    c0 = layout.columns[0]
    if shard == "rows":
        return local[:, winner - c0].clone()
    blocks = len(layout.owners)
    source = next(layout.owners[b] for b in range(blocks) if winner < block(p, blocks, b)[1])
    mine = dist.get_rank() == source
    column = local[:, winner - c0].clone() if mine else local.new_empty(local.shape[0])
    if mine:
        traffic.add("broadcast column", column)
    dist.broadcast(column, src=source, group=group)
    return column


def shard_rows(total: int, group: Optional[dist.ProcessGroup]) -> tuple[int, int]:
    """This rank's [start, stop) of `total` rows split in contiguous blocks."""
    return block(total, dist.get_world_size(group), dist.get_rank(group))


def gather_rows(part: torch.Tensor, total: int, group: Optional[dist.ProcessGroup]) -> torch.Tensor:
    """The `total` rows whose blocks (`shard_rows`) the ranks hold, in order, on every rank."""
    world = dist.get_world_size(group)
    sizes = [b - a for a, b in (block(total, world, r) for r in range(world))]
    padded = part.new_zeros((max(sizes), *part.shape[1:]))
    padded[: len(part)] = part
    parts = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded, group=group)
    return torch.cat([chunk[:size] for chunk, size in zip(parts, sizes)])
