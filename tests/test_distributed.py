"""unlearn.distributed.codec_select on 2, 3 and 4 CPU ranks (gloo, loopback)
against the single-process op: same picks and scores in every sharding mode."""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import unlearn
from unlearn.compare import digits_request
from unlearn.distributed import Traffic, block, codec_select, column_block, grid_shape
from unlearn.ops.reference.codec_select import check_codec_select

# (name, n, p, max_select, stop_early, max_cache_bytes, integer data, modes)
CASES = [
    ("uneven", 61, 10, 5, False, 1 << 30, False, ("columns", "rows", "both")),
    ("recompute", 50, 7, 4, True, 0, False, ("columns", "rows", "both")),
    ("ties", 48, 9, 6, False, 1 << 30, True, ("columns", "rows", "both")),
    ("rank without columns", 40, 2, 2, False, 1 << 30, False, ("columns", "both")),
]


def _data(name: str, n: int, p: int, integer: bool) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(sum(map(ord, name)))
    if integer:
        f = torch.randint(0, 3, (n, p), generator=g).double()
        f[n // 2 :] = f[: n - n // 2].clone()
        return torch.randint(0, 4, (n,), generator=g).double(), f
    f = torch.randn(n, p, generator=g)
    return (f[:, 1] * f[:, p - 1] + 0.3 * torch.randn(n, generator=g)).double(), f


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        results = {}
        for name, n, p, k, stop, cache, integer, modes in CASES:
            y, f = _data(name, n, p, integer)
            for mode in modes:
                traffic = Traffic()
                results[name, mode] = (
                    *codec_select(y, f, k, shard=mode, stop_early=stop, seed=3, max_cache_bytes=cache, traffic=traffic),
                    traffic.bytes,
                    traffic.cache_bytes,
                )
                # The same with each rank handed only its block of columns.
                c0, c1 = column_block(p, shard=mode)
                results[name, mode, "sharded"] = codec_select(
                    y, f[:, c0:c1], k, shard=mode, stop_early=stop, seed=3, max_cache_bytes=cache, columns=p
                )
        try:  # the whole matrix where only this rank's block belongs
            codec_select(y, f, 2, columns=f.shape[1])
        except ValueError as error:
            results["wrong block"] = str(error)
        try:
            codec_select(y, f, 2, shard="diagonal")
        except ValueError as error:
            results["wrong shard"] = str(error)
        torch.save(results, os.path.join(out, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module", params=[2, 3, 4], ids=lambda w: f"{w} ranks")
def ranks(request, tmp_path_factory):
    world = request.param
    out = str(tmp_path_factory.mktemp(f"ranks{world}"))
    mp.spawn(_worker, args=(world, _free_port(), out), nprocs=world, join=True)
    return world, [torch.load(os.path.join(out, f"rank{r}.pt")) for r in range(world)]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_every_mode_matches_one_process(ranks, case):
    world, results = ranks
    name, n, p, k, stop, cache, integer, modes = case
    y, f = _data(name, n, p, integer)
    order, scores = torch.ops.unlearn.codec_select(y, f, k, stop, 3, cache)
    assert (order >= 0).sum() >= 2  # the case selects something to compare
    for mode in modes:
        for rank in range(world):
            got_order, got_scores, _, _ = results[rank][name, mode]
            assert torch.equal(got_order, order), (mode, rank)
            torch.testing.assert_close(got_scores, scores, rtol=0, atol=0, equal_nan=True, msg=f"{mode}, rank {rank}")
            sharded_order, sharded_scores = results[rank][name, mode, "sharded"]
            assert torch.equal(sharded_order, order), (mode, rank, "sharded input")
            torch.testing.assert_close(sharded_scores, scores, rtol=0, atol=0, equal_nan=True)


def test_traffic_and_memory_follow_the_mode(ranks):
    world, results = ranks
    name, n, p, k = CASES[0][:4]
    columns = results[0][name, "columns"]
    rows = results[0][name, "rows"]
    # Columns: one int64 per step to pick, and no partial sums; every rank caches all n rows.
    assert columns[2]["all_reduce pick"] == 8 * k and "all_reduce partial sums" not in columns[2]
    assert columns[3] == n * n * 4
    # Rows: the p + 1 partial sums per step and no broadcast; rank 0 caches its block of rows.
    assert rows[2] == {"all_reduce partial sums": 8 * (p + 1) * k}
    assert rows[3] == (block(n, world, 0)[1] - block(n, world, 0)[0]) * n * 4
    sent = sum(r[name, "columns"][2].get("broadcast column", 0) for r in results)
    assert sent == 4 * n * k  # each picked column broadcast once, by its owner


def test_bad_shards_raise_clear_errors_on_every_rank(ranks):
    world, results = ranks
    for r in results:
        assert "features: with columns=" in r["wrong block"] and "this rank takes its block" in r["wrong block"]
        assert "shard must be one of 'columns', 'rows', 'both'" in r["wrong shard"]


def test_grid_and_blocks():
    assert grid_shape(4) == (2, 2) and grid_shape(6) == (2, 3) and grid_shape(3) == (1, 3) and grid_shape(1) == (1, 1)
    assert [block(10, 3, i) for i in range(3)] == [(0, 3), (3, 6), (6, 10)]
    assert [block(2, 3, i) for i in range(3)] == [(0, 0), (0, 1), (1, 2)]


def test_errors_without_a_process_group():
    with pytest.raises(ValueError, match="torch.distributed is not initialised"):
        codec_select(torch.randn(10).double(), torch.randn(10, 3), 2)


def _lcodec_worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        model, forget_set, retain_set = _lcodec_request()
        result = unlearn.forget(
            model, "lcodec", forget=forget_set, retain=retain_set, group=dist.group.WORLD, **LCODEC_OPTIONS
        )
        torch.save(
            (result.model.state_dict(), result.report["per_sample_columns"]), os.path.join(out, f"rank{rank}.pt")
        )
    finally:
        dist.destroy_process_group()


LCODEC_OPTIONS = dict(seed=0, perturbations=200, l2=5e-4, damping=0.1, noise=True, curvature_samples=128)


def _lcodec_request():
    request = digits_request(unlearn.digits(), forget_indices=range(3))
    forget_set, retain_set = request.forget, request.retain
    return unlearn.train("cnn"), (forget_set.inputs, forget_set.labels), (retain_set.inputs, retain_set.labels)


@pytest.mark.parametrize("world", [2, 3])
def test_lcodec_with_a_process_group_unlearns_the_same_weights(tmp_path, world):
    model, forget_set, retain_set = _lcodec_request()  # trains (or loads) the model before the ranks start
    one = unlearn.forget(model, "lcodec", forget=forget_set, retain=retain_set, **LCODEC_OPTIONS)
    mp.spawn(_lcodec_worker, args=(world, _free_port(), str(tmp_path)), nprocs=world, join=True)
    for rank in range(world):
        state, columns = torch.load(tmp_path / f"rank{rank}.pt")
        assert columns == one.report["per_sample_columns"]
        for name, value in one.model.state_dict().items():
            assert torch.equal(state[name], value), (rank, name)
    assert any(not torch.equal(a, b) for a, b in zip(model.state_dict().values(), one.model.state_dict().values()))


def test_a_rank_block_is_checked_against_the_whole_width():
    y = torch.arange(6.0)
    check_codec_select(y, torch.zeros(6, 0), 5, 0, columns=5)  # a rank may hold no columns
    with pytest.raises(ValueError, match=r"max_select must be between 1 and the number of columns \(5\), got 6"):
        check_codec_select(y, torch.zeros(6, 0), 6, 0, columns=5)
    with pytest.raises(ValueError, match="features contains NaN"):
        check_codec_select(y, torch.full((6, 2), float("nan")), 2, 0, columns=5)
    with pytest.raises(ValueError, match="features needs at least 1 column"):
        check_codec_select(y, torch.zeros(6, 0), 2, 0)  # the op itself needs columns
