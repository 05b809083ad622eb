"""Each training option is declared once (training/config.py); the CLI, the sweep spec and the
estimator are generated from it and refuse a bad value with the same words."""

from __future__ import annotations

import math

import pytest
from click.testing import CliRunner

from hmlearn.cli import main
from hmlearn.experiments.spec import RESERVED, SpecError, parse_spec
from hmlearn.training.config import OPTIONS, OptionError, TrainConfig, check_option, option_type


def _out_of_range(name: str):
    """A value just outside option ``name``'s range (None where it has no bound)."""
    spec = OPTIONS[name]
    base, _ = option_type(name)
    if spec.low is not None:
        return spec.low if spec.low_open else (spec.low - 1 if base is int else spec.low - 0.5)
    if spec.high is not None:
        return spec.high if spec.high_open else spec.high + 1
    return None


BOUNDED = [name for name in OPTIONS if _out_of_range(name) is not None]


def _cli_error(*args: str, command: str = "train") -> str:
    result = CliRunner().invoke(main, [command, "labels.csv", *args])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output  # one line, no usage text, no traceback
    return lines[0]


def _spec_error(name: str, value) -> str:
    if name in RESERVED:  # set by the spec's own keys (seeds, threads_per_cell): the shared checker's words
        with pytest.raises(OptionError) as caught:
            check_option(name, value)
        return str(caught.value)
    with pytest.raises(SpecError) as caught:
        parse_spec({"name": "x", "datasets": ["derisi_FUN"], "methods": {"m": {name: value}}})
    return str(caught.value)


@pytest.mark.parametrize("name", BOUNDED)
def test_every_out_of_range_option_is_one_line_in_the_spec_validators_words(name):
    value = _out_of_range(name)
    flag = OPTIONS[name].flag or "--" + name.replace("_", "-")
    shown = str(int(value)) if float(value).is_integer() and option_type(name)[0] is int else str(value)
    cli = _cli_error(flag, shown, command="train" if OPTIONS[name].group == "training" else "train-images")
    spec = _spec_error(name, value)
    assert cli.startswith(f"error: {flag}: ") and "out of range" in cli
    assert spec.endswith(cli.removeprefix(f"error: {flag}: ")), (cli, spec)


@pytest.mark.parametrize(("args", "words"), [
    (["--epochs", "0"], "--epochs: 0 is out of range [1, inf)"),
    (["--lr", "nan"], "--lr: expected a number, got nan"),
    (["--omega", "nan"], "--omega: expected a number, got nan"),
    (["--dropout", "1.5"], "--dropout: 1.5 is out of range [0, 1)"),
    (["--focal", "gatd"], "did you mean gated?"),
    (["--device", "gpu"], "--device: 'gpu' is not a device"),
    (["--batch-size", "two"], "--batch-size: expected an integer, got 'two'"),
])
def test_named_mistakes(args, words):
    assert words in _cli_error(*args)


def test_the_cli_offers_every_training_option_and_train_images_the_image_ones():
    train = {p.name for p in main.commands["train"].params}
    images = {p.name for p in main.commands["train-images"].params}
    training = {n for n, s in OPTIONS.items() if s.group == "training"}
    assert training <= train and not ({n for n in OPTIONS} - training) & train
    assert set(OPTIONS) <= images


def test_the_estimator_parameters_are_the_options_plus_hierarchy_threshold_and_progress():
    from hmlearn.estimator import HMCClassifier

    assert list(HMCClassifier().get_params()) == sorted([*OPTIONS, "hierarchy", "threshold", "progress"])
    assert HMCClassifier(heads=3).get_params()["heads"] == 3
    with pytest.raises(TypeError, match="did you mean heads"):
        HMCClassifier(hedas=3)


def test_the_config_validates_itself_and_defaults_are_in_range():
    assert TrainConfig().validate() == TrainConfig()
    with pytest.raises(OptionError, match="epochs: 0 is out of range"):
        TrainConfig(epochs=0).validate()
    for name in OPTIONS:
        check_option(name, getattr(TrainConfig(), name))


def test_spelled_out_choices_match_the_torch_side_registries():
    from hmlearn.nn.constraint import METHODS
    from hmlearn.nn.encoders import ENCODERS
    from hmlearn.nn.heads import ACTIVATIONS
    from hmlearn.objectives.rare_node import OBJECTIVES, SCHEDULERS
    from hmlearn.objectives.uncertainty import MEASURES

    assert OPTIONS["activation"].choices == tuple(ACTIVATIONS)
    assert OPTIONS["objective"].choices == OBJECTIVES
    assert OPTIONS["scheduler"].choices == SCHEDULERS
    assert OPTIONS["focal"].choices == tuple(MEASURES)
    assert OPTIONS["mcm_method"].choices == ("auto", *METHODS)
    assert OPTIONS["encoder"].choices == tuple(ENCODERS)


def test_numbers_written_as_yaml_strings_and_integral_floats_are_normalised():
    assert check_option("lr", "1e-4") == 1e-4
    assert check_option("epochs", 3.0) == 3 and isinstance(check_option("epochs", 3.0), int)
    with pytest.raises(OptionError, match="expected a number, got inf"):
        check_option("focal_k", math.inf)
