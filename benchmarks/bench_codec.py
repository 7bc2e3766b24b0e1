"""CODEC, FOCI and nearest neighbours: ours against the published algorithm and
well-known libraries, side by side, medians of repeated runs.

    python benchmarks/bench_codec.py            # CPU, writes benchmarks/RESULTS.md
    python benchmarks/bench_codec.py --device cuda
    python benchmarks/bench_codec.py --quick    # small sizes, a smoke run
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import unlearn
from common import command, cuda_seconds, machine, median_seconds, table, write_section


def published_codec_select(
    y: torch.Tensor, f: torch.Tensor, picks: int, budget_s: float = float("inf")
) -> tuple[list[int], float]:
    """FOCI as the published code does it: for every candidate of every step, a
    dense n x n distance matrix (torch.cdist) over the selected columns plus the
    candidate, its row argmin, and the CODEC numerator from max-ranks of y.

    Returns the picks and the seconds taken. Once `budget_s` has passed, it
    stops after the current pick and returns the time extrapolated to `picks`
    from the mean time per pick so far (every pick scans about p candidates)."""
    n = len(y)
    ys = y.sort().values
    ranks = torch.searchsorted(ys, y, right=True)
    eye = torch.eye(n, dtype=torch.bool, device=f.device)
    chosen: list[int] = []
    start = time.perf_counter()
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
        elapsed = time.perf_counter() - start
        if elapsed > budget_s and len(chosen) < picks:
            return chosen, elapsed / len(chosen) * picks
    return chosen, time.perf_counter() - start


def foci_data(n: int, p: int, device: str, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """y depends on 3 of p standardised columns; the rest are noise."""
    g = torch.Generator().manual_seed(seed)
    f = torch.randn(n, p, generator=g)
    y = f[:, 0] * f[:, 1] + torch.sin(2 * f[:, 2]) + 0.3 * torch.randn(n, generator=g)
    return y.double().to(device), f.to(device)


def bench_codec_select(sizes, picks, repeats, published_repeats):
    """codec_select against the published algorithm, both on the CPU."""
    rows = []
    for n, p in sizes:
        y, f = foci_data(n, p, "cpu")
        ours = lambda: unlearn.ops.codec_select(y, f, picks, stop_early=False)  # noqa: E731
        t_ours = median_seconds(ours, repeats)
        order = ours()[0].tolist()
        published = []  # the picks of every timed run; the last one is compared
        t_pub = median_seconds(lambda: published.append(published_codec_select(y, f, picks)[0]), published_repeats)
        pub = published[-1]
        rows.append(
            [
                f"{n}",
                f"{p}",
                f"{picks}",
                f"{t_pub:.3f}",
                f"{t_ours:.4f}",
                f"{t_pub / t_ours:.0f}x",
                f"{len(set(order) & set(pub))}/{picks}",
            ]
        )
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
        ours = float(unlearn.ops.codec(yt, zt))
        theirs = float(xicorpy.compute_conditional_dependence(y, z))
        t_ours = median_seconds(lambda: unlearn.ops.codec(yt, zt), repeats)
        t_theirs = median_seconds(lambda: xicorpy.compute_conditional_dependence(y, z), repeats)
        rows.append(
            [
                f"{n}",
                "3",
                f"{t_theirs:.3f}",
                f"{t_ours:.4f}",
                f"{t_theirs / t_ours:.0f}x",
                f"{theirs:.6f}",
                f"{ours:.6f}",
            ]
        )
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


def bench_nearest_neighbor(sizes, repeats):
    """nearest_neighbor against scipy's cKDTree and torch.cdist + argmin, on the CPU."""
    from scipy.spatial import cKDTree

    rows = []
    for n, d, dtype, with_cdist in sizes:
        x = torch.rand(n, d, generator=torch.Generator().manual_seed(1), dtype=dtype)
        ours = unlearn.ops.nearest_neighbor(x)
        t_ours = median_seconds(lambda: unlearn.ops.nearest_neighbor(x), repeats)
        xn = x.numpy()
        kd = torch.from_numpy(cKDTree(xn).query(xn, k=2)[1][:, 1])
        t_kd = median_seconds(lambda: cKDTree(xn).query(xn, k=2), repeats)
        row = [
            f"{n}",
            f"{d}",
            str(dtype).removeprefix("torch."),
            f"{t_ours:.4f}",
            f"{t_kd:.4f}",
            f"{t_kd / t_ours:.1f}x",
            f"{float((kd == ours).double().mean()):.4f}",
        ]
        if with_cdist:
            ref = cdist_argmin(x)
            t_cd = median_seconds(lambda: cdist_argmin(x), repeats)
            row += [f"{t_cd:.4f}", f"{t_cd / t_ours:.1f}x", f"{float((ref == ours).double().mean()):.4f}"]
        else:
            row += ["not run (too slow)", "-", "-"]
        rows.append(row)
        print(row, flush=True)
    header = ["n", "d", "dtype", "ours (s)", "cKDTree (s)", "ours vs cKDTree", "same as cKDTree"]
    return table(header + ["cdist+argmin (s)", "ours vs cdist", "same as cdist"], rows)


def fp32_rate(n: int = 8192) -> float:
    """The card's measured FP32 rate (FLOP/s): an n^3 matmul with TF32 off."""
    tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        a, b = torch.randn(n, n, device="cuda"), torch.randn(n, n, device="cuda")
        return 2 * n**3 / cuda_seconds(lambda: a @ b, 10)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32


def bench_codec_select_cuda(sizes, picks, rate, published_budget_s):
    """codec_select on the GPU against the published algorithm on the same GPU,
    the compiled CPU kernel, and the arithmetic floor: p n^2 distance updates
    per step, each at least two FP32 instructions (a subtraction and a fused
    multiply-add), at the measured rate of one FMA (2 FLOP) per instruction."""
    rows = []
    for n, p in sizes:
        y, f = foci_data(n, p, "cuda")
        order = unlearn.ops.codec_select(y, f, picks, stop_early=False)[0].tolist()
        t_ours = cuda_seconds(lambda: unlearn.ops.codec_select(y, f, picks, stop_early=False), 5)
        t_tiled = cuda_seconds(lambda: unlearn.ops.codec_select(y, f, picks, stop_early=False, max_cache_bytes=0), 3)
        t_first = cuda_seconds(lambda: unlearn.ops.codec_select(y, f, 1, stop_early=False), 5)
        yc, fc = y.cpu(), f.cpu()
        start = time.perf_counter()
        cpu_order = unlearn.ops.codec_select(yc, fc, picks, stop_early=False)[0].tolist()
        t_cpu = time.perf_counter() - start
        torch.cuda.synchronize()
        pub, t_pub = published_codec_select(y, f, picks, published_budget_s)
        note = "" if len(pub) == picks else f" (from {len(pub)} picks)"
        floor = 4 * p * n * n * picks / rate
        rows.append(
            [
                f"{n}",
                f"{p}",
                f"{picks}",
                f"{t_pub:.2f}{note}",
                f"{t_cpu:.3f}",
                f"{t_ours:.4f}",
                f"{t_tiled:.4f}",
                f"{t_first:.4f}",
                f"{t_pub / t_ours:.0f}x",
                f"{t_cpu / t_ours:.0f}x",
                f"{floor:.4f}",
                f"{t_ours / floor:.2f}",
                f"{sum(a == b for a, b in zip(order, cpu_order))}/{picks}",
                f"{sum(a == b for a, b in zip(order, pub))}/{len(pub)}",
            ]
        )
        print(rows[-1], flush=True)
    header = [
        "n",
        "p",
        "picks",
        "published, GPU (s)",
        "CPU kernel (s)",
        "ours, cache (s)",
        "ours, tiled (s)",
        "ours, first step (s)",
        "vs published",
        "vs CPU",
        "floor (s)",
        "ours / floor",
        "same picks as CPU",
        "same picks as published",
    ]
    return table(header, rows)


def bench_nearest_neighbor_cuda(n, d, repeats):
    """nearest_neighbor on the GPU against torch.cdist + argmin in blocks of
    2048 rows, with the extra GPU memory each one allocates."""
    rows = []
    for dtype in (torch.float32, torch.float64):
        x = torch.rand(n, d, generator=torch.Generator().manual_seed(1), dtype=dtype).cuda()
        cells = []
        for fn in (lambda: unlearn.ops.nearest_neighbor(x), lambda: cdist_argmin(x)):
            torch.cuda.synchronize()
            base = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
            out = fn()
            torch.cuda.synchronize()
            cells.append((out, cuda_seconds(fn, repeats), (torch.cuda.max_memory_allocated() - base) / 2**20))
        (ours, t_ours, m_ours), (ref, t_ref, m_ref) = cells
        rows.append(
            [
                str(dtype).removeprefix("torch."),
                f"{n}",
                f"{d}",
                f"{t_ours * 1e3:.2f}",
                f"{m_ours:.2f}",
                f"{t_ref * 1e3:.2f}",
                f"{m_ref:.1f}",
                f"{t_ref / t_ours:.2f}x",
                f"{float((ref == ours).double().mean()):.4f}",
            ]
        )
        print(rows[-1], flush=True)
    header = [
        "dtype",
        "n",
        "d",
        "ours (ms)",
        "ours extra memory (MiB)",
        "cdist+argmin (ms)",
        "cdist extra memory (MiB)",
        "ours vs cdist",
        "same as cdist",
    ]
    return table(header, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    args = parser.parse_args()
    dev = args.device
    if dev == "cuda":
        side = 2048 if args.quick else 8192
        rate = fp32_rate(side)
        sizes = [(1024, 128)] if args.quick else [(2048, 512), (8192, 2048)]
        picks = 4 if args.quick else 16
        parts = [
            (
                "codec_select: published algorithm and CPU kernel vs ours on the GPU",
                bench_codec_select_cuda(sizes, picks, rate, 5 if args.quick else 60),
            ),
            (
                "nearest_neighbor vs torch.cdist + argmin",
                bench_nearest_neighbor_cuda(4096 if args.quick else 32768, 32, 20),
            ),
        ]
        notes = [
            f"Measured FP32 rate ({side}^3 matmul, TF32 off): {rate / 1e12:.1f} TFLOP/s. "
            "Floor: p n^2 distance updates per step, each a subtraction and a multiply-add (2 instructions, "
            "4 FLOP-equivalents at that rate, which counts an FMA as 2 FLOP). "
            '"first step": max_select=1, the unconditional step, which cannot prune. '
            '"tiled" recomputes the S-space distances per tile instead of caching n x n (max_cache_bytes=0). '
            "CPU kernel: one run on the same machine's cores. GPU times: CUDA events, medians.",
            "",
        ]
    else:
        select_sizes = [(500, 50)] if args.quick else [(1000, 100), (1000, 500), (2000, 100), (2000, 500)]
        f64, f32 = torch.float64, torch.float32
        if args.quick:
            nn_sizes = [(5000, 3, f64, True), (2000, 32, f32, True)]
        else:
            nn_sizes = [(10_000, 3, f64, True), (100_000, 3, f64, False)]
            nn_sizes += [(10_000, d, dtype, True) for dtype in (f64, f32) for d in (16, 32, 64)]
        parts = [("codec_select vs the published algorithm", bench_codec_select(select_sizes, 10, 3, 3))]
        parts.append(("codec vs xicorpy", bench_codec_vs_xicorpy([2000] if args.quick else [10_000, 100_000], 3)))
        parts.append(("nearest_neighbor vs cKDTree and torch.cdist + argmin", bench_nearest_neighbor(nn_sizes, 3)))
        notes = []
    body = [f"## CODEC ops ({dev})", "", f"Machine: {machine(dev)}", f"Command: `{command()}`", ""] + notes
    for title, text in parts:
        body += [f"### {title}", "", text, ""]
    report = "\n".join(body)
    print(report)
    write_section(f"bench_codec:{dev}" + (":quick" if args.quick else ""), report)


if __name__ == "__main__":
    main()
