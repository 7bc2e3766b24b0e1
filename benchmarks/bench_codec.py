"""CODEC, FOCI and nearest neighbours: ours against the published algorithm and
well-known libraries, side by side, medians of repeated runs.

    python benchmarks/bench_codec.py            # CPU, writes benchmarks/RESULTS.md
    python benchmarks/bench_codec.py --device cuda
    python benchmarks/bench_codec.py --quick    # small sizes, a smoke run
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from common import command, machine, median_seconds, table, write_section

import unlearn


def published_codec_select(y: torch.Tensor, f: torch.Tensor, picks: int) -> list[int]:
    """FOCI as the published code does it: for every candidate of every step, a
    dense n x n distance matrix (torch.cdist) over the selected columns plus the
    candidate, its row argmin, and the CODEC numerator from max-ranks of y."""
    n = len(y)
    ys = y.sort().values
    ranks = torch.searchsorted(ys, y, right=True)
    eye = torch.eye(n, dtype=torch.bool, device=f.device)
    chosen: list[int] = []
    for _ in range(picks):
        best, best_j = None, -1
        for j in range(f.shape[1]):
            if j in chosen:
                continue
            d = torch.cdist(f[:, chosen + [j]], f[:, chosen + [j]])
            d.masked_fill_(eye, float("inf"))
            score = torch.minimum(ranks, ranks[d.argmin(dim=1)]).sum()
            if best is None or score > best:
                best, best_j = score, j
        chosen.append(best_j)
    return chosen


def foci_data(n: int, p: int, device: str, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """y depends on 3 of p standardised columns; the rest are noise."""
    g = torch.Generator().manual_seed(seed)
    f = torch.randn(n, p, generator=g)
    y = f[:, 0] * f[:, 1] + torch.sin(2 * f[:, 2]) + 0.3 * torch.randn(n, generator=g)
    return y.double().to(device), f.to(device)


def bench_codec_select(sizes, picks, device, repeats, published_repeats):
    rows = []
    sync = device == "cuda"
    for n, p in sizes:
        y, f = foci_data(n, p, device)
        ours = lambda: torch.ops.unlearn.codec_select(y, f, picks, False, 0)  # noqa: E731
        t_ours = median_seconds(ours, repeats, sync)
        order = ours()[0].tolist()
        t_pub = median_seconds(lambda: published_codec_select(y, f, picks), published_repeats, sync)
        pub = published_codec_select(y, f, picks)
        rows.append([f"{n}", f"{p}", f"{picks}", f"{t_pub:.3f}", f"{t_ours:.4f}", f"{t_pub / t_ours:.0f}x",
                     f"{len(set(order) & set(pub))}/{picks}"])
        print(rows[-1], flush=True)
    return table(["n", "p", "picks", "published (s)", "codec_select (s)", "speed-up", "same picks"], rows)


def bench_codec_vs_xicorpy(sizes, repeats):
    import xicorpy

    rows = []
    for n in sizes:
        g = np.random.default_rng(0)
        z = g.standard_normal((n, 3))
        y = np.sin(z[:, 0]) + z[:, 1] * z[:, 2] + 0.5 * g.standard_normal(n)
        yt, zt = torch.from_numpy(y), torch.from_numpy(z)
        ours = float(torch.ops.unlearn.codec(yt, zt, None, 0))
        theirs = float(xicorpy.compute_conditional_dependence(y, z))
        t_ours = median_seconds(lambda: torch.ops.unlearn.codec(yt, zt, None, 0), repeats)
        t_theirs = median_seconds(lambda: xicorpy.compute_conditional_dependence(y, z), repeats)
        rows.append([f"{n}", "3", f"{t_theirs:.3f}", f"{t_ours:.4f}", f"{t_theirs / t_ours:.0f}x", f"{theirs:.6f}", f"{ours:.6f}"])
        print(rows[-1], flush=True)
    return table(["n", "d", "xicorpy (s)", "codec (s)", "speed-up", "T xicorpy", "T ours"], rows)


def cdist_argmin(x: torch.Tensor, block: int = 2048) -> torch.Tensor:
    out = torch.empty(len(x), dtype=torch.int64, device=x.device)
    for start in range(0, len(x), block):
        d = torch.cdist(x[start : start + block], x)
        rows = torch.arange(start, min(len(x), start + block), device=x.device)
        d[rows - start, rows] = float("inf")
        out[rows] = d.argmin(dim=1)
    return out


def bench_nearest_neighbor(sizes, device, repeats):
    from scipy.spatial import cKDTree

    rows = []
    sync = device == "cuda"
    for n, d, with_cdist in sizes:
        x = torch.rand(n, d, generator=torch.Generator().manual_seed(1), dtype=torch.float64).to(device)
        ours = torch.ops.unlearn.nearest_neighbor(x, 0)
        t_ours = median_seconds(lambda: torch.ops.unlearn.nearest_neighbor(x, 0), repeats, sync)
        row = [f"{n}", f"{d}", f"{t_ours:.4f}"]
        if device == "cpu":
            xn = x.numpy()
            kd = torch.from_numpy(cKDTree(xn).query(xn, k=2)[1][:, 1])
            t_kd = median_seconds(lambda: cKDTree(xn).query(xn, k=2), repeats)
            row += [f"{t_kd:.4f}", f"{t_kd / t_ours:.1f}x", f"{float((kd == ours).double().mean()):.4f}"]
        if with_cdist:
            ref = cdist_argmin(x)
            t_cd = median_seconds(lambda: cdist_argmin(x), repeats, sync)
            row += [f"{t_cd:.4f}", f"{t_cd / t_ours:.1f}x", f"{float((ref == ours).double().mean()):.4f}"]
        else:
            row += ["not run (too slow)", "-", "-"]
        rows.append(row)
        print(row, flush=True)
    header = ["n", "d", "ours (s)"]
    if device == "cpu":
        header += ["cKDTree (s)", "ours vs cKDTree", "same as cKDTree"]
    return table(header + ["cdist+argmin (s)", "ours vs cdist", "same as cdist"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    args = parser.parse_args()
    dev = args.device
    if dev == "cuda":
        select_sizes, picks = ([(1024, 128)] if args.quick else [(2048, 512), (8192, 2048)]), (4 if args.quick else 16)
        nn_sizes = [(4096, 32, True)] if args.quick else [(32768, 32, True)]
        parts = [("codec_select", bench_codec_select(select_sizes, picks, dev, 5, 1))]
        parts.append(("nearest_neighbor", bench_nearest_neighbor(nn_sizes, dev, 10)))
    else:
        select_sizes = [(500, 50)] if args.quick else [(1000, 100), (1000, 500), (2000, 100), (2000, 500)]
        nn_sizes = [(5000, 3, True)] if args.quick else [(10_000, 3, True), (100_000, 3, False), (10_000, 32, True)]
        parts = [("codec_select vs the published algorithm", bench_codec_select(select_sizes, 10, dev, 3, 3))]
        parts.append(("codec vs xicorpy", bench_codec_vs_xicorpy([2000] if args.quick else [10_000, 100_000], 3)))
        parts.append(("nearest_neighbor vs cKDTree and torch.cdist + argmin", bench_nearest_neighbor(nn_sizes, dev, 3)))
    body = [f"## CODEC ops ({dev})", "", f"Machine: {machine(dev)}", f"Command: `{command()}`", ""]
    for title, text in parts:
        body += [f"### {title}", "", text, ""]
    report = "\n".join(body)
    print(report)
    write_section(f"bench_codec:{dev}" + (":quick" if args.quick else ""), report)


if __name__ == "__main__":
    main()
