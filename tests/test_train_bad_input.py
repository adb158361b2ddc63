"""Every bad input to scaling-train is one clear line naming the cause, and exit status 2."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from conftest import compose_train, tiny_overrides

from scaling.runid import run_id_for

# every test here runs the scaling-train entry point, which composes the config and loads the corpus
pytestmark = pytest.mark.slow


def _cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], args: list[str]) -> tuple[int, str]:
    """Run the real console entry point in-process and return (exit status, stderr)."""
    from scaling.train.app import main

    monkeypatch.setattr(sys, "argv", ["scaling-train", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    return int(exit_info.value.code or 0), capsys.readouterr().err


CASES = {
    "unknown family": (["model.family=gpt5"], "unknown model family 'gpt5'"),
    "impossible shape": (["model.d_model=30", "model.n_heads=4"], "model.n_heads=4 does not divide model.d_model=30"),
    "odd rope head": (["model.family=llama", "model.d_model=30", "model.n_heads=2"], "odd head dimension"),
    "budget below one batch": (["train.tokens=100"], "smaller than one batch"),
    "no budget": (["train.tokens=null"], "set exactly one budget"),
    "two budgets": (["train.tokens_per_param=20"], "set exactly one budget"),
    "unreadable corpus": (["data.roots=[/nonexistent/corpus]"], "corpus root is not a readable folder"),
    "unknown tokenizer": (["data.tokenizer=/nonexistent/tokenizer"], "unknown tokenizer '/nonexistent/tokenizer'"),
    "context longer than corpus": (["model.context=1000000"], "model.context=1000000 is longer than"),
    "unknown schedule": (["schedule.name=linear"], "unknown schedule.name 'linear'"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_one_line_and_exit_2(case: str, tmp_path: Path, monkeypatch, capsys) -> None:
    extra, expected = CASES[case]
    code, err = _cli(monkeypatch, capsys, tiny_overrides(tmp_path, "train.tokens=20000", *extra))
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines[-1].startswith("error: ") and expected in lines[-1], err
    assert "Traceback" not in err
    assert not (tmp_path / "default" / "runs").exists() or not any((tmp_path / "default" / "runs").iterdir())


def test_corrupt_existing_record_is_set_aside_not_overwritten(tmp_path: Path, monkeypatch, capsys) -> None:
    """Issue 18, item 5: a corrupt record means the run is not finished; it is kept aside and the run retrains."""
    overrides = tiny_overrides(tmp_path, "train.tokens=20000")
    run_id = run_id_for(compose_train(overrides))
    record = tmp_path / "default" / "runs" / f"{run_id}.json"
    record.parent.mkdir(parents=True)
    record.write_text('{"run_id": "x", "status": "fini')
    from scaling.train.app import main

    monkeypatch.setattr(sys, "argv", ["scaling-train", *overrides])
    main()  # trains: no SystemExit
    assert f"warning: corrupt run record {record}: invalid JSON" in capsys.readouterr().err
    [kept] = record.parent.glob(f"{record.name}.damaged-*")
    assert kept.read_text() == '{"run_id": "x", "status": "fini'


@pytest.mark.parametrize("typo", ["train:\n  eval_point: 3", "grid:\n  ration: 3", "data:\n  vocab_sise: 3"])
def test_misspelt_key_in_a_preset_fails_at_composition(typo: str, tmp_path: Path) -> None:
    """The typed schema (scaling.config) rejects a key no group has, instead of ignoring it."""
    import shutil

    from hydra import compose, initialize_config_dir
    from hydra.errors import ConfigCompositionException

    from scaling.config import CONFIG_DIR

    configs = tmp_path / "configs"
    shutil.copytree(CONFIG_DIR, configs)
    (configs / "experiment" / "typo.yaml").write_text(f"# @package _global_\n{typo}\n")
    with (
        initialize_config_dir(config_dir=str(configs), version_base="1.3"),
        pytest.raises(ConfigCompositionException),
    ):
        compose(config_name="train", overrides=["+experiment=typo"])
