"""The unlearn command: a real run on the digits, one-line errors with exit code 2
for usage errors and ValueErrors, and tracebacks for anything else; help with
defaults, `unlearn methods`, per-method options, and a model, data and
training function of the user's given as import specs (the example included)."""

from __future__ import annotations

import json
import re
import runpy
import shlex
import shutil
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import unlearn
from unlearn import cli
from unlearn.cli import main
from unlearn.compare import digits as digits_module
from unlearn.compare.display import LEGEND, METRICS


def _main_writing(tmp_path, command: str):
    """Runs the command, quiet, with --json and --plot into tmp_path: (exit code, json path, plot path)."""
    out, plot = tmp_path / "out.json", tmp_path / "out.png"
    return main([*command.split(), "--quiet", "--json", str(out), "--plot", str(plot)]), out, plot


def test_run_prints_the_table_and_writes_json_and_plot(tmp_path, capsys):
    code, out, plot = _main_writing(tmp_path, "run --method lcodec --model mlp --forget-samples 3")
    assert code == 0
    text = capsys.readouterr().out
    assert "original" in text and "unlearned" in text and "retrained" in text and "test accuracy" in text
    result = json.loads(out.read_text())
    assert len(result["forget_indices"]) == 3
    assert {"original", "unlearned", "retrained"} <= result["metrics"].keys()
    assert result["metrics"]["unlearned"]["seconds"] > 0 and result["report"]["selected_blocks"]
    assert plot.stat().st_size > 1000


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "--method", "nope"], "unknown method 'nope'"),
        (["run", "--forget-indices", "3,99999"], "--forget-indices must lie in 0..1346"),
        (["run", "--forget-indices", "a,b"], "comma-separated integers"),
        (["run", "--forget-class", "12"], "--forget-class must be in 0..9"),
        (["run", "--forget-samples", "0"], "--forget-samples must be in"),
        (["run", "--method", "ssd", "--noise", "--model", "mlp"], "ssd has no option 'noise'"),
    ],
)
def test_bad_requests_exit_2_with_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_compare_runs_the_requested_methods_side_by_side(tmp_path, capsys):
    code, out, plot = _main_writing(tmp_path, "compare --methods svd_projection,ssd --model mlp --forget-class 3")
    assert code == 0
    text = capsys.readouterr().out
    assert "svd_projection" in text and "ssd" in text and "test forgot ~" in text and "+-" not in text
    assert "retain ^" in text and "JS to retrain v" in text and LEGEND in text  # which way is better
    result = json.loads(out.read_text())
    assert set(result["metrics"]) == {"original", "retrain", "svd_projection", "ssd"}
    assert "confidences" not in result and "forget_quality" not in result
    assert result["metrics"]["ssd"]["speedup"] > 0 and "acc_test_forget" in result["metrics"]["ssd"]
    assert plot.stat().st_size > 1000


@pytest.mark.parametrize(
    "argv, message",
    [
        (["compare", "--methods", "lcodec", "--forget-class", "3"], "'lcodec' does not serve class requests"),
        (["compare", "--methods", "nope"], "unknown method 'nope'"),
        (["compare", "--seeds", "0"], "--seeds must be at least 1, got 0"),
        (["run", "--method", "svd_projection", "--forget-samples", "3"], "does not serve instance requests"),
    ],
)
def test_compare_rejects_methods_that_do_not_fit_the_request(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_compare_over_seeds_prints_mean_and_std_and_the_forget_quality(tmp_path, capsys):
    code, out, plot = _main_writing(tmp_path, "compare --methods neggrad --model mlp --forget-samples 4 --seeds 2")
    assert code == 0
    text = capsys.readouterr().out
    assert "mean +- std over model seeds 0, 1" in text and "forget quality F (higher = closer to retraining)" in text
    words = {line.split()[0]: line.split()[1:] for line in text.splitlines() if line.strip()}
    assert words["method"][-5:] == ["F", "^", "final", "score", "^"] and {"original", "retrain"} <= words.keys()
    neggrad = words["neggrad"]  # 9 scores as mean+-std, then F and the final score
    assert len(neggrad) == 11 and all("+-" in cell for cell in neggrad[:9]) and neggrad[-2:] == ["0.000", "0.000"]
    result = json.loads(out.read_text())
    assert result["seeds"] == [0, 1] and result["reference_seeds"] == [2, 3] and len(result["forget_indices"]) == 4
    assert set(result["forget_quality"]) == set(result["final_score"]) == {"original", "retrain", "neggrad"}
    assert set(result["metrics"]["neggrad"]["acc_forget"]) == {"mean", "std"}
    # Two models per side leave the metric no score buckets: F is 0 (see quality.py).
    assert set(result["forget_quality"].values()) == {0.0}
    assert plot.stat().st_size > 1000


def _raise(error):
    def fail(*args, **kwargs):
        raise error

    return fail


def test_a_type_error_from_inside_is_a_bug_with_its_traceback_not_a_usage_error(monkeypatch, capsys):
    monkeypatch.setattr(cli, "compare_digits", _raise(TypeError("a bug")))
    with pytest.raises(TypeError, match="a bug"):
        main(["compare", "--methods", "ssd", "--forget-class", "3", "--quiet"])
    assert "error" not in capsys.readouterr().err


def test_a_missing_matplotlib_is_a_usage_error_before_the_run(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` raise ImportError
    monkeypatch.setattr(cli, "compare_digits", _raise(AssertionError("ran before the plot was refused")))
    assert main(["compare", "--forget-class", "3", "--quiet", "--plot", "out.png"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--plot needs matplotlib" in err and len(err.splitlines()) == 1


def test_compare_says_which_methods_it_skipped_and_why(monkeypatch, capsys):
    row = {metric.key: 0.5 for metric in METRICS}
    out = {"metrics": {"original": row, "retrain": row}, "reports": {}, "skipped": {"mnemonic": "needs codes"}}
    monkeypatch.setattr(cli, "compare_digits", lambda *args, **kwargs: out)
    assert main(["compare", "--forget-class", "3", "--quiet"]) == 0
    assert "skipped mnemonic: needs codes" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["run", "compare", "audit", "methods"])
def test_help_shows_the_defaults(command, capsys):
    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    assert done.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert "(default: " in text
    if command != "methods":
        assert "(default: 0)" in text and "--seed" in text
    if command == "compare":
        assert "(default: all)" in text and "(default: 1)" in text and "PKG.MODULE:FACTORY" in text


def test_methods_lists_every_method_with_scope_needs_and_option_defaults(capsys):
    assert main(["methods"]) == 0
    text = capsys.readouterr().out
    names = [line.split(":")[0] for line in text.splitlines() if line and not line.startswith(" ")]
    assert names == list(unlearn.methods.available())
    assert "  scope: any; needs: retain" in text
    doc = unlearn.methods.describe("finetune")["options"]["epochs"]["doc"]
    assert doc and re.search(rf"^    epochs=3 +{re.escape(doc)}$", text, re.M)


def test_methods_name_describes_one_method(capsys):
    assert main(["methods", "ssd"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("ssd: ") and lines[1] == "  scope: any; needs: forget, retain"
    assert any(line.startswith("    alpha=10.0 ") for line in lines) and len(lines) == 3 + 3  # 3 options
    assert main(["methods", "nope"]) == 2
    assert "unknown method 'nope'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--weights", "w.pt"], "--weights needs a model of yours (--model PKG.MODULE:FACTORY)"),
        (["--data", "m:load"], "--data needs a model of yours"),
        (["--retrain", "m:train"], "--retrain needs a model of yours"),
        (["--model", "resnet"], "--model must be one of logreg, mlp, cnn, vgg, or PKG.MODULE:FACTORY"),
        (["--option", "finetune.epochs"], "--option must be METHOD.KEY=VALUE, got 'finetune.epochs'"),
        (["--option", "epochs=3"], "--option must be METHOD.KEY=VALUE"),
        (["--option", "nope.epochs=3"], "--option: unknown method 'nope'"),
        (["--option", "neggrad.bogus=1"], "neggrad has no option 'bogus'"),
        (["--option", "neggrad.epochs=0"], "epochs"),
    ],
)
def test_flags_that_make_no_sense_exit_2_naming_the_flag(argv, message, monkeypatch, capsys):
    for name in ("prepare", "train"):  # nothing trains before the flags are refused
        monkeypatch.setattr(digits_module, name, _raise(AssertionError(f"{name} ran before the flags were refused")))
    assert main(["compare", "--methods", "neggrad", "--model", "mlp", "--quiet", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_options_are_python_literals_or_strings():
    assert cli._options(["a.x=1", "a.y=0.5", "b.z=None", "b.w=(1, 2)", "c.v=fisher", "c.t='1'"]) == {
        "a": {"x": 1, "y": 0.5},
        "b": {"z": None, "w": (1, 2)},
        "c": {"v": "fisher", "t": "1"},
    }


def test_options_reach_the_methods_on_the_digits(monkeypatch, capsys):
    seen = {}

    def fake(methods, request, **kwargs):
        seen.update(kwargs)
        row = {metric.key: 0.5 for metric in METRICS}
        return {"metrics": {"original": row, "retrain": row}, "reports": {}, "skipped": {}}

    monkeypatch.setattr(cli, "compare_digits", fake)
    argv = ["compare", "--quiet", "--model", "mlp", "--option", "finetune.epochs=1", "--option", "lcodec.noise=True"]
    assert main(argv) == 0
    assert seen["options"] == {"finetune": {"epochs": 1}, "lcodec": {"noise": True}}


# A model, data and training function of the user's, from import specs.
TINY = """
import torch
from torch import nn
from torch.utils.data import TensorDataset

VALUE = 3


def build():
    torch.manual_seed(0)
    return nn.Linear(4, 3)


def load_data():
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(3).repeat(30)
    inputs = 3 * torch.eye(3, 4)[labels] + torch.randn(90, 4, generator=g)
    return TensorDataset(inputs[:60], labels[:60]), TensorDataset(inputs[60:], labels[60:])


def train(data, seed):
    inputs, labels = data
    train.calls.append((type(data).__name__, len(labels), seed))
    torch.manual_seed(seed)
    model = nn.Linear(4, 3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(50):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(inputs), labels).backward()
        optimizer.step()
    return model


train.calls = []
"""


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    """tiny.py in an empty current folder, imported by the command from there (then forgotten)."""
    (tmp_path / "tiny.py").write_text(TINY)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    yield tmp_path
    sys.modules.pop("tiny", None)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--model", "tiny:nope"], "--model: 'tiny' has no attribute 'nope'"),
        (["--model", "no_such_module:build"], "--model: cannot import 'no_such_module'"),
        (["--model", "tiny:VALUE"], "--model: 'tiny:VALUE' is not callable (it is a int)"),
        (["--model", "tiny:build", "--data", "tiny"], "--data must be 'package.module:function', got 'tiny'"),
        (["--model", "tiny:build", "--retrain", "tiny:"], "--retrain must be 'package.module:function'"),
        (["--model", "tiny:build", "--retrain", "tiny:nope"], "--retrain: 'tiny' has no attribute 'nope'"),
        (["--model", "tiny:build", "--weights", "missing.pt"], "--weights: no such file 'missing.pt'"),
        (["--model", "tiny:build", "--weights", "tiny.py"], "--weights: 'tiny.py' is not a file of weights"),
        (
            ["--model", "tiny:build", "--data", "tiny:load_data", "--forget-class", "7"],
            "--forget-class must be in 0..2",
        ),
    ],
)
def test_bad_import_specs_and_weights_exit_2_naming_the_flag(tiny, argv, message, capsys):
    assert main(["compare", "--methods", "neggrad", "--quiet", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_weights_that_do_not_fit_the_model_exit_2(tiny, capsys):
    torch.save(nn.Linear(5, 3).state_dict(), tiny / "other.pt")
    assert main(["compare", "--model", "tiny:build", "--weights", "other.pt", "--quiet"]) == 2
    assert "--weights: 'other.pt' does not fit the model" in capsys.readouterr().err


def test_a_user_model_runs_without_tqdm_with_plain_progress_lines(tiny, monkeypatch, recwarn, capsys):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # makes `import tqdm...` raise ImportError
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    torch.save(nn.Linear(4, 3).state_dict(), tiny / "w.pt")
    argv = "compare --model tiny:build --weights w.pt --data tiny:load_data --retrain tiny:train --methods neggrad"
    argv += " --forget-class 2 --option neggrad.epochs=1 --json out.json"
    assert main(argv.split()) == 0
    captured = capsys.readouterr()
    assert "retrain (reference): 1/2" in captured.err and "unlearn (neggrad): 2/2" in captured.err
    assert not [w for w in recwarn if "tqdm" in str(w.message)]
    assert "methods on tiny:build (data: tiny:load_data), forgetting class 2 (20 training samples)" in captured.out
    # The user's training function got the retained samples as an (inputs, labels) tuple, without class 2.
    assert sys.modules["tiny"].train.calls == [("tuple", 40, 0)]
    result = json.loads((tiny / "out.json").read_text())
    assert result["model"] == "tiny:build" and result["forget_classes"] == [2]
    assert set(result["metrics"]) == {"original", "retrain", "neggrad"}
    assert result["reports"]["neggrad"]["steps"] == 1  # --option neggrad.epochs=1: one batch of 20, once


EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "user_model"


def test_the_user_model_example_runs_as_its_readme_says(tmp_path, monkeypatch, capsys):
    """The example's two commands, in a copy of its folder: train and save the
    weights, then the `unlearn compare` line of its README."""
    shutil.copy(EXAMPLE / "my_model.py", tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    (line,) = [line for line in (EXAMPLE / "README.md").read_text().splitlines() if line.startswith("unlearn compare")]
    try:
        with torch.random.fork_rng():
            runpy.run_path("my_model.py", run_name="__main__")
            code = main(shlex.split(line)[1:])
    finally:
        sys.modules.pop("my_model", None)
    assert code == 0 and (tmp_path / "w.pt").exists()
    text = capsys.readouterr().out
    assert "methods on my_model:build (data: my_model:load_data), forgetting 10 training samples" in text
    rows = {line.split()[0] for line in text.splitlines() if line.strip()}
    assert {"method", "original", "retrain", "finetune", "ssd"} <= rows and LEGEND in text
