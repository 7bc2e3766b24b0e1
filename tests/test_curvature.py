import torch
import torch.nn.functional as F

from unlearn import Split, curvature, models


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
