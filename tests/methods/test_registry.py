"""The method protocol: registration, option checks against each method's
signature, describe(), and the README's method table."""

from __future__ import annotations

import dataclasses
import inspect
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import unlearn
from unlearn.methods import available, describe, register
from unlearn.methods.registry import REQUEST_ARGUMENTS

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture(scope="module")
def request_data():
    digits = unlearn.digits()
    return {
        "forget": (digits.train.inputs[:4], digits.train.labels[:4]),
        "retain": (digits.train.inputs[4:200], digits.train.labels[4:200]),
    }


def test_an_unknown_option_names_itself_and_lists_the_valid_ones(request_data):
    model = unlearn.models.build("logreg")
    with pytest.raises(ValueError, match=r"'alpah'.*alpha=10\.0, dampening=1\.0, batch_size=64"):
        unlearn.forget(model, "ssd", **request_data, alpah=1)


@pytest.mark.parametrize("method", sorted(available()))
def test_wrong_option_types_are_refused_naming_the_option(method, request_data):
    """Every method's options are checked from their annotations, before the
    request: a str where a number or flag is expected is a TypeError."""
    for name, option in describe(method)["options"].items():
        if isinstance(option["default"], (bool, int, float)):
            with pytest.raises(TypeError, match=f"^{name} must be"):
                unlearn.forget(unlearn.models.build("logreg"), method, **request_data, **{name: "x"})


def test_epochs_must_be_an_int_everywhere(request_data):
    model = unlearn.models.build("logreg")
    with pytest.raises(TypeError, match="epochs must be an int, got float"):
        unlearn.forget(model, "finetune", **request_data, epochs=2.5)
    with pytest.raises(TypeError, match="epochs must be an int, got float"):
        unlearn.train("logreg", epochs=2.5, cache=False)
    with pytest.raises(ValueError, match="epochs must be >= 1, got 0"):
        unlearn.forget(model, "finetune", **request_data, epochs=0)


def test_a_name_is_registered_once_unless_forced():
    def twice(model, *, forget, retain, forget_classes, seed, strength: float = 1.0):
        """A method that only reports.

        Options:
            strength: how hard
        """
        return {}

    with pytest.raises(ValueError, match="'ssd' is already registered"):
        register("ssd", "again")(twice)
    assert describe("ssd")["options"]["alpha"]["default"] == 10.0
    original = unlearn.methods.registry._REGISTRY["ssd"]
    try:
        register("ssd", "again", force=True)(twice)
        assert describe("ssd")["options"] == {"strength": {"default": 1.0, "doc": "how hard"}}
    finally:
        unlearn.methods.registry._REGISTRY["ssd"] = original


def test_registration_checks_the_declaration():
    def fine(model, *, forget, retain, forget_classes, seed, level: int = 1):
        return {}

    with pytest.raises(ValueError, match="scope"):
        register("x_scope", "x", scope="samples")(fine)
    with pytest.raises(ValueError, match="needs: unknown need 'labels'"):
        register("x_needs", "x", needs=("labels",))(fine)
    with pytest.raises(TypeError, match="must take"):
        register("x_args", "x")(lambda model, data: {})

    def no_default(model, *, forget, retain, forget_classes, seed, level: int):
        return {}

    with pytest.raises(TypeError, match="'level' must be keyword-only with a default"):
        register("x_default", "x")(no_default)
    assert "x_scope" not in available() and "x_default" not in available()


@pytest.mark.parametrize("method", sorted(available()))
def test_describe_documents_every_option(method):
    spec = unlearn.methods.registry.get(method)
    info = describe(method)
    assert info["scope"] in ("instance", "class", "any")
    assert set(info["needs"]) <= {"forget", "retain", "mnemonic_codes"}
    signature = inspect.signature(spec.fn).parameters
    assert list(signature)[: len(REQUEST_ARGUMENTS)] == list(REQUEST_ARGUMENTS)
    assert list(info["options"]) == list(signature)[len(REQUEST_ARGUMENTS) :]
    for name, option in info["options"].items():
        assert option["default"] == signature[name].default
        assert option["doc"], f"{method}: option {name!r} has no line in the docstring's Options: section"


def method_table() -> str:
    """The README's method table, as describe() gives it."""
    lines = ["| method | scope | needs | options (default) | controls |", "|---|---|---|---|---|"]
    for name in sorted(available()):
        info = describe(name)
        options = ", ".join(f"`{key}={o['default']!r}`" for key, o in info["options"].items())
        controls = ", ".join(f"`{key}`" for key in info["controls"]) or "-"
        lines.append(
            f"| `{name}` | {info['scope']} | {', '.join(info['needs']) or '-'} | {options or '-'} | {controls} |"
        )
    return "\n".join(lines)


def test_the_readme_method_table_matches_describe():
    table = method_table()
    text = README.read_text()
    found = re.search(r"<!-- methods -->\n(.*?)\n<!-- /methods -->", text, re.S)
    assert found, "README.md needs the method table between <!-- methods --> and <!-- /methods -->"
    assert found.group(1) == table, "README.md's method table is stale; it should read:\n" + table


def test_forget_refuses_a_bad_seed_and_inplace(request_data):
    model = unlearn.models.build("logreg")
    with pytest.raises(TypeError, match="seed must be an int"):
        unlearn.forget(model, "finetune", **request_data, seed=1.5)
    with pytest.raises(TypeError, match="inplace must be a bool"):
        unlearn.forget(model, "finetune", **request_data, inplace="yes")
    with pytest.raises(TypeError, match="method must be a str"):
        unlearn.forget(model, torch.nn.Linear, **request_data)


def test_instance_methods_keep_their_samples_when_classes_are_given_too(monkeypatch, request_data):
    """Forget classes beside forget samples leave a sample method's request as given."""
    spec = unlearn.methods.registry.get("l2ul")
    seen = {}

    def record(model, *, forget, retain, forget_classes, seed, **options):
        seen.update(forget=forget, retain=retain)
        return {}

    monkeypatch.setitem(unlearn.methods.registry._REGISTRY, "l2ul", dataclasses.replace(spec, fn=record))
    unlearn.forget(unlearn.models.build("logreg"), "l2ul", **request_data, forget_classes=[1])
    assert len(seen["forget"]) == 4 and len(seen["retain"]) == 196


def test_options_accept_what_the_methods_take(request_data):
    """Lists and arrays where a sequence is meant, and zero where zero is meaningful."""
    model = unlearn.models.build("logreg")
    for method, options in [
        ("l2ul", {"bounds": [0.0, 16.0], "relabel_to": np.array([1, 2, 3, 4]), "variant": "relabel"}),
        ("lcodec", {"memory_budget": 0, "smoothness": 0.0, "lipschitz": 0.0}),
    ]:
        spec = unlearn.methods.registry.get(method)
        spec.check_options(options)
    with pytest.raises(ValueError, match="epochs must be >= 1, got -1000"):
        unlearn.forget(model, "finetune", **request_data, epochs=-(10**400))
    with pytest.raises(TypeError, match="epochs must be an int, got float"):
        unlearn.forget(model, "finetune", **request_data, epochs=1e400)
