import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from unlearn import Split, curvature, models, taps
from unlearn._core import as_split
from unlearn.units import Selection, Units


def test_diagonal_fisher_matches_a_loop_over_samples(gen):
    model = models.build("mlp").double()
    x = torch.randn(7, 1, 8, 8, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 10, (7,), generator=gen)
    fisher = curvature.diagonal_fisher(model, Split(x, y), batch_size=3)
    expected = {name: torch.zeros_like(p) for name, p in model.named_parameters()}
    for i in range(7):
        model.zero_grad()
        F.cross_entropy(model(x[i : i + 1]), y[i : i + 1]).backward()
        for name, p in model.named_parameters():
            expected[name] += p.grad.square() / 7
    assert fisher.keys() == expected.keys()
    for name in expected:
        torch.testing.assert_close(fisher[name], expected[name], rtol=1e-10, atol=1e-14)


def _gauss_newton(model, selection, x):
    """mean_i J_i^T (diag p_i - p_i p_i^T) J_i, one sample at a time."""
    forward, v = curvature.restricted_forward(model, selection)
    total = torch.zeros(v.numel(), v.numel(), dtype=torch.float64)
    for row in x.split(1):
        j = torch.autograd.functional.jacobian(lambda w, row=row: forward(w, row)[0], v).double()
        p = torch.softmax(forward(v, row)[0].double(), dim=0)
        total += j.T @ (torch.diag(p) - torch.outer(p, p)) @ j
    return total / len(x)


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
@pytest.mark.parametrize("dense", [True, False])
def test_expected_fisher_is_the_gauss_newton_matrix(gen, dtype, tol, dense):
    model = models.build("cnn").to(dtype).eval()
    units = Units(model)
    selection = Selection.from_columns(units, [0, 5, units.columns - 1])
    x = torch.randn(70, 1, 8, 8, generator=gen, dtype=dtype)  # two batches of the pass, the second partial
    y = torch.randint(0, 10, (70,), generator=gen)
    d = selection.size(model)
    block, low_rank = curvature.expected_fisher(model, selection, Split(x, y), d * d * 8 if dense else 1 << 40)
    expected = _gauss_newton(model, selection, x)
    assert low_rank is False  # fits either way; the factor is tested below
    scale = float(expected.abs().max())
    torch.testing.assert_close(block, expected, rtol=0, atol=tol * scale)


def test_expected_fisher_factor_gives_the_same_matrix(gen):
    model = models.build("mlp").double().eval()
    selection = Selection.from_columns(Units(model), [1, 2])
    x = torch.randn(20, 1, 8, 8, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 10, (20,), generator=gen)
    d = selection.size(model)
    factor, low_rank = curvature.expected_fisher(model, selection, Split(x, y), d * d * 8 - 1)
    assert low_rank is True and factor.shape == (200, d)  # C = 10 rows per sample, all of them fit
    expected = _gauss_newton(model, selection, x)
    torch.testing.assert_close(
        factor.T @ factor / len(factor), expected, rtol=0, atol=1e-12 * float(expected.abs().max())
    )


class _Shared(torch.nn.Module):
    """One Linear layer called twice per forward: its Jacobian is not one
    Kronecker product per sample, so the general form must be taken."""

    def __init__(self):
        super().__init__()
        self.inner = torch.nn.Linear(10, 10)
        self.head = torch.nn.Linear(64, 10, bias=False)

    def forward(self, x):
        return self.inner(torch.tanh(self.inner(self.head(x.flatten(1)))))


class _Scaled(torch.nn.Module):
    """A Linear head whose output is scaled before it is returned: its
    Jacobian is not the identity, so the backward passes must be taken."""

    def __init__(self):
        super().__init__()
        self.head = torch.nn.Linear(64, 10)

    def forward(self, x):
        return torch.tanh(self.head(x.flatten(1))) * 3


class _ScaledInPlace(torch.nn.Module):
    """The head's output, the logits, scaled in place: the same tensor, but
    not the head's output any more (its Jacobian is not the identity)."""

    def __init__(self):
        super().__init__()
        self.head = torch.nn.Linear(64, 10)

    def forward(self, x):
        return self.head(x.flatten(1)).mul_(3)


@pytest.mark.parametrize(
    "build, pick, kronecker",
    [
        (lambda: models.build("mlp"), lambda u: [0, 3, u.columns - 2, u.columns - 1], True),  # two Linear layers
        (lambda: models.build("cnn"), lambda u: [u.columns - 4, u.columns - 1], True),  # the head of a CNN
        (lambda: torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10, bias=False)), lambda u: [2, 7], True),
        (_Scaled, lambda u: [0, 4, 9], True),  # the selected layer's output is not the model's
        (_ScaledInPlace, lambda u: [0, 4, 9], True),
        (  # an activation changes the head's output in place
            lambda: torch.nn.Sequential(
                torch.nn.Flatten(), torch.nn.Linear(64, 10), torch.nn.Hardtanh(-0.3, 0.3, inplace=True)
            ),
            lambda u: [2, 7],
            True,
        ),
        (_Shared, lambda u: [1, 12], False),
        (lambda: models.build("cnn"), lambda u: [0, u.columns - 1], False),  # a convolution too
    ],
)
def test_the_kronecker_factor_is_the_gauss_newton_matrix(gen, build, pick, kronecker):
    torch.manual_seed(0)
    model = build().double().eval()
    selection = Selection.from_columns(Units(model), pick(Units(model)))
    x = torch.randn(70, 1, 8, 8, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 10, (70,), generator=gen)
    factor = curvature.kronecker_factor(model, selection, Split(x, y))
    assert all(not m._forward_hooks for m in model.modules())  # no hook stays behind
    assert (factor is not None) == kronecker
    if factor is None:
        return
    expected = _gauss_newton(model, selection, x)
    d = len(expected)
    columns = torch.stack([factor @ e for e in torch.eye(d, dtype=torch.float64)], dim=1)
    atol = 1e-10 * float(expected.abs().max())
    torch.testing.assert_close(columns, expected, rtol=0, atol=atol)
    torch.testing.assert_close(factor.diagonal(), expected.diagonal(), rtol=0, atol=atol)
    g = torch.randn(d, generator=gen, dtype=torch.float64)
    damping = float(expected.diagonal().mean())
    solution, info = factor.solve(g, damping)
    direct = torch.linalg.solve(expected + damping * torch.eye(d, dtype=torch.float64), g)
    assert info["residual"] <= 1e-10 and 0 < info["steps"] <= 10 * d
    torch.testing.assert_close(solution, direct, rtol=0, atol=1e-8 * float(direct.abs().max()))


def test_conjugate_gradients_report_a_damping_too_small_to_converge(gen):
    model = models.build("mlp").double().eval()
    selection = Selection.from_columns(Units(model), list(range(Units(model).columns - 10, Units(model).columns)))
    x = torch.randn(30, 1, 8, 8, generator=gen, dtype=torch.float64)
    factor = curvature.kronecker_factor(model, selection, Split(x, torch.zeros(30, dtype=torch.long)))
    g = torch.randn(len(factor.diagonal()), generator=gen, dtype=torch.float64)
    _, info = factor.solve(g, 1e-300, tolerance=1e-15)  # singular: 30 x 9 rows for 650 entries
    assert info["steps"] == 10 * len(g) and info["residual"] > 1e-15


@pytest.mark.parametrize("weightings", [1, None])
def test_batches_fit_the_budget_and_stay_within_the_cap(gen, weightings):
    model = models.build("cnn").double().eval()
    selection = Selection.from_columns(Units(model), [0, 5])
    x = torch.randn(23, 1, 8, 8, generator=gen, dtype=torch.float64)
    y = torch.arange(23)
    each = taps.sample_bytes(model, selection, x, weightings)
    for budget, sizes in [(0, [1] * 23), (5 * each + each // 2, [5, 5, 2, 5, 5, 1]), (1 << 50, [12, 11])]:
        pieces = list(curvature.budgeted(model, selection, Split(x, y), weightings, 12, budget))
        assert [len(py) for _, py in pieces] == sizes  # never less than one, never more than the cap
        assert torch.equal(torch.cat([py for _, py in pieces]), y)  # every sample once, in order


def _budgeted(run, model, selection, split, budget):
    """run's result under `budget` bytes, and the batch size of every forward pass it made."""
    seen = []
    handle = model.register_forward_pre_hook(lambda m, args: seen.append(len(args[0])))
    try:
        return run(model, selection, split, budget), seen
    finally:
        handle.remove()


@pytest.mark.parametrize(
    "name, build, run",
    [
        ("per-sample gradients", "cnn", lambda m, s, d, b: curvature.per_sample_gradients(m, s, d, max_bytes=b)),
        ("mean gradient", "cnn", lambda m, s, d, b: curvature.mean_gradient(m, s, d, max_bytes=b)),
        ("kronecker factor", "mlp", lambda m, s, d, b: curvature.kronecker_factor(m, s, d, b).diagonal()),
        ("expected fisher", "cnn", lambda m, s, d, b: curvature.expected_fisher(m, s, d, b)[0]),
        ("exact hessian", "mlp", lambda m, s, d, b: curvature.exact_hessian(m, s, d, max_bytes=b)),
    ],
)
def test_a_smaller_budget_takes_smaller_batches_and_gives_the_same_result(gen, name, build, run):
    model = models.build(build).double().eval()
    units = Units(model)
    selection = Selection.from_columns(units, [1, units.columns - 1])
    x = torch.randn(40, 1, 8, 8, generator=gen, dtype=torch.float64)
    split = Split(x, torch.randint(0, 10, (40,), generator=gen))
    weightings = 2 * 64 if name == "exact hessian" else None if name in ("kronecker factor", "expected fisher") else 1
    each = taps.sample_bytes(model, selection, x, weightings)
    small = 3 * each if name != "expected fisher" else selection.size(model) ** 2 * 8  # the dense matrix fits
    wide, wide_batches = _budgeted(run, model, selection, split, 1 << 50)
    narrow, narrow_batches = _budgeted(run, model, selection, split, small)
    assert max(wide_batches) == 40 and max(narrow_batches) == small // each < 40
    torch.testing.assert_close(narrow, wide, rtol=1e-10, atol=1e-14)


class _CountingLoader(DataLoader):
    """A DataLoader that counts the passes made over it."""

    def __iter__(self):
        self.passes = getattr(self, "passes", 0) + 1
        return super().__iter__()


def test_a_loader_is_read_once_a_pass_with_the_same_result_as_tensors(gen):
    model = models.build("cnn").double().eval()
    units = Units(model)
    selection = Selection.from_columns(units, [2, units.columns - 3])
    x = torch.randn(30, 1, 8, 8, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 10, (30,), generator=gen)
    loader = _CountingLoader(TensorDataset(x, y), batch_size=7)
    stream = as_split(loader, "retain")
    for run in (curvature.mean_gradient, curvature.per_sample_gradients):
        before = getattr(loader, "passes", 0)
        streamed = run(model, selection, stream, max_bytes=1 << 20)
        assert loader.passes == before + 1
        torch.testing.assert_close(streamed, run(model, selection, Split(x, y)), rtol=1e-10, atol=1e-14)


class _SparseMix(torch.nn.Module):
    """A sparse buffer mixes the inputs before the head (no storage to count)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mix", (2 * torch.eye(8, dtype=torch.float64)).to_sparse())
        self.head = torch.nn.Linear(8, 10).double()

    def forward(self, x):
        return self.head(torch.sparse.mm(self.mix, x.T).T)


def test_a_model_with_a_sparse_buffer_is_sized_and_differentiated(gen):
    model = _SparseMix().eval()
    selection = Selection.from_columns(Units(model), [1, 4])
    x = torch.randn(9, 8, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 10, (9,), generator=gen)
    gradient = curvature.mean_gradient(model, selection, Split(x, y))
    F.cross_entropy(model(x), y).backward()
    expected = selection.gather({name: p.grad for name, p in model.named_parameters()})
    torch.testing.assert_close(gradient, expected, rtol=1e-12, atol=1e-15)


def test_exact_hessian_takes_every_product_at_once_without_a_chunk_size(gen):
    model = models.build("mlp").double().eval()
    selection = Selection.from_columns(Units(model), [0, Units(model).columns - 1])
    x = torch.randn(12, 1, 8, 8, generator=gen, dtype=torch.float64)
    split = Split(x, torch.randint(0, 10, (12,), generator=gen))
    torch.testing.assert_close(
        curvature.exact_hessian(model, selection, split, chunk_size=None),
        curvature.exact_hessian(model, selection, split, chunk_size=16),
        rtol=1e-12,
        atol=1e-15,
    )
