"""The unlearn command: a real run on the digits, and one-line errors with exit code 2."""

from __future__ import annotations

import json

import pytest

from unlearn.cli import main


def test_run_prints_the_table_and_writes_json_and_plot(tmp_path, capsys):
    out, plot = tmp_path / "out.json", tmp_path / "out.png"
    code = main(["run", "--method", "lcodec", "--model", "mlp", "--forget-samples", "3", "--quiet",
                 "--json", str(out), "--plot", str(plot)])
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
    ],
)
def test_bad_requests_exit_2_with_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
