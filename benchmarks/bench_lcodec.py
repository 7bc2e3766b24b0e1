"""L-CODEC end to end on the digits CNN: our pipeline against the published
pipeline algorithm, a batch of requests against retraining, block_solve
against a dense solve, and the curvature's per-sample Jacobians of
convolution blocks against torch.func. Medians of repeated runs, side by side.

    python benchmarks/bench_lcodec.py [--quick]
"""

from __future__ import annotations

import argparse
from functools import partial

import torch
import torch.nn.functional as F

import unlearn
from bench_codec import published_codec_select
from common import command, machine, median_seconds, table, write_section
from unlearn import curvature
from unlearn.methods import forget
from unlearn.models import ResNet18
from unlearn.training import TRAINING_DEFAULTS
from unlearn.units import Selection, Units

OPTIONS = dict(noise=False, l2=TRAINING_DEFAULTS["weight_decay"], damping=0.1)


def published_pipeline(model, x, y, retain, copies, sigma, l2, damping, curvature_samples, picks, seed):
    """The published algorithm: one forward per perturbation copy with hooks
    appending to Python lists, FOCI by dense per-candidate distances, Fisher
    curvature from per-sample gradients taken one sample at a time, and a dense
    torch.linalg.solve."""
    units = Units(model)
    acts: list[torch.Tensor] = []
    hooks = [
        layer.module.register_forward_hook(
            lambda m, i, o: acts.append((o if o.dim() == 2 else o.flatten(2).mean(2)).detach()[0])
        )
        for layer in units.layers
    ]
    gen = torch.Generator().manual_seed(seed)
    losses, rows = [], []
    with torch.no_grad():
        for _ in range(copies):
            acts.clear()
            out = model(x + sigma * torch.randn(x.shape, generator=gen))
            losses.append(F.cross_entropy(out, y))
            rows.append(torch.cat(acts))
    for h in hooks:
        h.remove()
    features = unlearn.standardize_columns(torch.stack(rows))
    columns, _ = published_codec_select(torch.stack(losses).double(), features, picks)
    chosen = Selection.from_columns(units, columns)
    params = dict(model.named_parameters())
    names = [name for name, _ in chosen.parameters()]
    grads = []
    for i in range(curvature_samples):
        loss = F.cross_entropy(model(retain.inputs[i : i + 1]), retain.labels[i : i + 1])
        g = torch.autograd.grad(loss, [params[n] for n in names])
        grads.append(chosen.gather(dict(zip(names, g))))
    u = torch.stack(grads).double()
    h = u.T @ u / len(u) + damping * torch.eye(u.shape[1], dtype=torch.float64)
    loss = F.cross_entropy(model(retain.inputs), retain.labels)
    g = torch.autograd.grad(loss, [params[n] for n in names])
    rhs = (
        chosen.gather(dict(zip(names, g))).double()
        + l2 * chosen.gather({n: params[n].detach() for n in names}).double()
    )
    return torch.linalg.solve(h, rhs)


def forward_seconds(model, inputs, repeats, batch=64):
    """Median seconds of plain no-grad forward passes over `inputs` in
    batches of `batch` (the fastest size on the digits CNN here)."""

    def run():
        with torch.no_grad():
            for start in range(0, len(inputs), batch):
                model(inputs[start : start + batch])

    return median_seconds(run, repeats)


def stage_seconds(report):
    return ", ".join(f"{stage} {seconds:.3f}" for stage, seconds in report["timings"].items() if seconds >= 0.001)


def bench_request(model, data, repeats):
    """One request with the default curvature (the Gauss-Newton matrix, C rows
    a sample on 1024 samples) and with the published one (the empirical
    Fisher on 512 samples), each against the published pipeline; and the
    floor: the forward passes any implementation makes, those of the 1000
    perturbed copies and of the curvature samples."""
    x, y = data.train.inputs[:1], data.train.labels[:1]
    retain = unlearn.Split(data.train.inputs[1:], data.train.labels[1:])
    cases = [("defaults", {}, 1024), ("published curvature", dict(fisher="empirical", curvature_samples=512), 512)]
    runs = {
        name: lambda extra=extra: forget(model, "lcodec", forget=(x, y), retain=retain, seed=0, **OPTIONS, **extra)
        for name, extra, _ in cases
    }
    picks = len(runs["defaults"]().report["per_sample_columns"][0])
    t_pub = median_seconds(
        lambda: published_pipeline(
            model.eval(), x, y, retain, 1000, 0.1, OPTIONS["l2"], OPTIONS["damping"], 512, picks, 0
        ),
        repeats,
    )
    copies = x + 0.1 * torch.randn(1000, *x.shape[1:], generator=torch.Generator().manual_seed(0))
    t_copies = forward_seconds(model, copies, repeats)
    rows = []
    for name, _, curvature_samples in cases:
        t_ours = median_seconds(runs[name], repeats)
        report = runs[name]().report
        floor = t_copies + forward_seconds(model, retain.inputs[:curvature_samples], repeats)
        rows.append(
            [
                f"one request (1 sample, 1000 copies), {name}",
                f"{t_pub:.2f}",
                f"{t_ours:.3f}",
                f"{t_pub / t_ours:.0f}x",
                f"{picks} units picked by both; seconds: {stage_seconds(report)}; floor (forward passes of the "
                f"copies and {curvature_samples} curvature samples) {floor:.3f}, reference / floor "
                f"{t_pub / floor:.0f}x",
            ]
        )
    return rows


def bench_samples(model, data, k, repeats):
    """One request of k samples against k requests of one: the FOCI runs of
    the k samples share one perturbed forward pass, and the Newton step is
    taken once on the union of their blocks."""
    retain = unlearn.Split(data.train.inputs[k:], data.train.labels[k:])

    def request(samples):
        inputs, labels = data.train.inputs[:samples], data.train.labels[:samples]
        return forget(model, "lcodec", forget=(inputs, labels), retain=retain, seed=0, **OPTIONS)

    one, many = partial(request, 1), partial(request, k)
    report = many().report
    t_one, t_many = median_seconds(one, repeats), median_seconds(many, repeats)
    return [
        [
            f"one request of {k} samples vs {k} requests of 1",
            f"{k * t_one:.2f}",
            f"{t_many:.2f}",
            f"{k * t_one / t_many:.1f}x",
            f"{report['selected_params']} parameters selected; seconds: {stage_seconds(report)}",
        ]
    ]


def bench_batch(model, data, k, repeats):
    idx = torch.arange(k)
    keep = torch.ones(len(data.train), dtype=torch.bool)
    keep[idx] = False
    fs = (data.train.inputs[idx], data.train.labels[idx])
    rs = (data.train.inputs[keep], data.train.labels[keep])
    t_ours = median_seconds(lambda: forget(model, "lcodec", forget=fs, retain=rs, **OPTIONS), repeats)
    t_retrain = median_seconds(lambda: forget(model, "retrain", forget=fs, retain=rs), repeats)
    return [
        [f"batch of {k} requests vs retraining", f"{t_retrain:.2f}", f"{t_ours:.2f}", f"{t_retrain / t_ours:.1f}x", ""]
    ]


def bench_block_solve(d, m, repeats):
    g = torch.Generator().manual_seed(0)
    u = torch.randn(m, d, generator=g, dtype=torch.float64)
    rhs = torch.randn(d, generator=g, dtype=torch.float64)

    def dense():
        h = u.T @ u / m + 0.01 * torch.eye(d, dtype=torch.float64)
        return torch.linalg.solve(h, rhs)

    ours = unlearn.ops.block_solve([u], rhs, 0.01, [True])
    err = float((ours - dense()).abs().max())
    t_ours = median_seconds(lambda: unlearn.ops.block_solve([u], rhs, 0.01, [True]), repeats)
    t_dense = median_seconds(dense, repeats)
    return [
        [
            f"block_solve d={d}, rank {m} vs dense solve",
            f"{t_dense:.3f}",
            f"{t_ours:.4f}",
            f"{t_dense / t_ours:.0f}x",
            f"max difference {err:.1e}",
        ]
    ]


def bench_jacobians(repeats):
    """The logits' Jacobians w.r.t. selected convolution and Linear blocks of a
    ResNet-18 (width 16, 3 x 32 x 32 inputs) for a batch of 64: the layers'
    taps (one batched backward) against torch.func (jacrev vmapped over the
    samples), the per-batch step of the default curvature."""
    torch.manual_seed(0)
    model = ResNet18(width=16).eval()
    units = Units(model)
    picks = [layer.column for layer in units.layers[:: max(1, len(units.layers) // 8)]] + [units.columns - 1]
    chosen = Selection.from_columns(units, picks)
    x = torch.randn(64, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    by_func = partial(curvature.func_jacobians, model, chosen, x)
    err = float((curvature.logit_jacobians(model, chosen, x)[1] - by_func()[1]).abs().max())
    t_ours = median_seconds(lambda: curvature.logit_jacobians(model, chosen, x), repeats)
    t_func = median_seconds(by_func, repeats)
    return [
        [
            f"logit Jacobians, ResNet-18 (width 16), {len(picks)} units in {len(chosen.rows)} layers, 64 samples",
            f"{t_func:.3f}",
            f"{t_ours:.3f}",
            f"{t_func / t_ours:.1f}x",
            f"torch.func (vmap of jacrev) as reference; {chosen.size(model)} parameters; max difference {err:.1e}",
        ]
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    data = unlearn.digits()
    model = unlearn.train("cnn")
    torch.func.grad(lambda w: (w * w).sum())(torch.ones(1))  # torch's one-time lazy imports
    repeats = 1 if args.quick else 5
    rows = bench_request(model, data, repeats)
    rows += bench_samples(model, data, 10, repeats)
    rows += bench_batch(model, data, 10 if args.quick else 100, repeats)
    rows += bench_block_solve(1024 if args.quick else 4096, 256, repeats)
    rows += bench_jacobians(repeats)
    body = "\n".join(
        [
            "## L-CODEC (cpu)",
            "",
            f"Machine: {machine()}",
            f"Command: `{command()}`",
            f"Options: {OPTIONS}; digits CNN; published baseline in the script.",
            "",
            table(["case", "reference (s)", "ours (s)", "speed-up", "note"], rows),
            "",
        ]
    )
    print(body)
    write_section("bench_lcodec:cpu" + (":quick" if args.quick else ""), body)


if __name__ == "__main__":
    main()
