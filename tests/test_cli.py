"""The unlearn command: a real run on the digits, one-line errors with exit code 2
for usage errors and ValueErrors, and tracebacks for anything else."""

from __future__ import annotations

import json
import sys

import pytest

from unlearn import cli
from unlearn.cli import main


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
    assert "svd_projection" in text and "ssd" in text and "test forgot" in text and "+-" not in text
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
    assert words["method"][-3:] == ["F", "final", "score"] and {"original", "retrain"} <= words.keys()
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
    row = {key: 0.5 for key, _, _ in cli.COMPARE_COLUMNS}
    out = {"metrics": {"original": row, "retrain": row}, "reports": {}, "skipped": {"mnemonic": "needs codes"}}
    monkeypatch.setattr(cli, "compare_digits", lambda *args, **kwargs: out)
    assert main(["compare", "--forget-class", "3", "--quiet"]) == 0
    assert "skipped mnemonic: needs codes" in capsys.readouterr().out
