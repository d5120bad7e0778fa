"""The NLU benchmark names each result after its settings, so a committed result is not overwritten by a
different run."""

import pytest
from benchmarks.nlu import parse_arguments, result_name


def _name(*extra: str) -> str:
    return result_name(parse_arguments(["--data", "data", "--task", "banking77", *extra]))


def test_the_name_shows_the_settings_that_differ_from_the_defaults() -> None:
    assert _name() == "nlu_banking77"
    assert _name("--seed", "7", "--teacher", "teacher/model") == "nlu_banking77_seed7_distilled"
    assert _name("--base-model", "packaged:all-mpnet-base-v2") == "nlu_banking77_base_all_mpnet_base_v2"


def test_a_tag_keeps_a_run_the_name_cannot_tell_apart_from_its_own_file() -> None:
    four = _name("--base-model", "packaged:all-mpnet-base-v2", "--epochs", "4")
    six = _name("--base-model", "packaged:all-mpnet-base-v2", "--epochs", "6", "--tag", "epochs6")
    assert six == four + "_epochs6"


@pytest.mark.parametrize("tag", ["Epochs6", "../results", "six epochs", ""])
def test_a_tag_that_cannot_be_a_file_name_is_a_usage_error_naming_it(
        tag: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        _name("--tag", tag)
    assert stopped.value.code == 2
    assert f"--tag {tag!r}" in capsys.readouterr().err


def test_a_learning_rate_the_mode_does_not_use_is_a_usage_error_naming_the_rate_it_uses(
        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        _name("--mode", "lora", "--learning-rate", "5e-5")
    assert stopped.value.code == 2
    error = capsys.readouterr().err
    assert "--learning-rate" in error and "lora_learning_rate" in error
    assert _name("--learning-rate", "5e-5") == "nlu_banking77"  # full fine-tuning reads it
