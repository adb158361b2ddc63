"""`scaling compare`: fitted laws side by side with bootstrap intervals, and its refusals."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from scaling.cli import main


def _fit_json(path: Path, E: float, *, flops: str = "exact", seed: int = 0) -> Path:  # noqa: N803
    """A fit file shaped like `scaling fit --json` output, with bootstrap samples around the law."""
    rng = np.random.default_rng(seed)
    law = np.array([E, 400.0, 2000.0, 0.35, 0.37])
    samples = law * (1 + 0.01 * rng.standard_normal((300, 5)))
    data = {
        "params": "with_head",
        "flops": flops,
        "at_flops": 1e20,
        "approach3": {"E": E, "A": 400.0, "B": 2000.0, "alpha": 0.35, "beta": 0.37, "samples": samples.tolist()},
    }
    path.write_text(json.dumps(data))
    return path


def test_a_clearly_better_law_is_called_lower(tmp_path: Path, capsys) -> None:
    a = _fit_json(tmp_path / "a.json", 1.80)
    b = _fit_json(tmp_path / "b.json", 1.60, seed=1)
    plot = tmp_path / "cmp.png"
    assert main(["compare", str(a), str(b), "--labels", "base,better", "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    assert "better - base: dL_opt = -0.2000" in out and "better is lower" in out
    assert plot.stat().st_size > 10_000


def test_identical_laws_are_not_distinguishable(tmp_path: Path, capsys) -> None:
    a = _fit_json(tmp_path / "a.json", 1.80)
    b = _fit_json(tmp_path / "b.json", 1.80, seed=2)
    main(["compare", str(a), str(b)])
    assert "not distinguishable" in capsys.readouterr().out


def test_mixed_conventions_are_refused(tmp_path: Path) -> None:
    a = _fit_json(tmp_path / "a.json", 1.8)
    b = _fit_json(tmp_path / "b.json", 1.8, flops="kaplan")
    out = subprocess.run(
        [sys.executable, "-m", "scaling.cli", "compare", str(a), str(b)], capture_output=True, text=True
    )
    assert out.returncode == 2 and out.stderr.startswith("error: the fits use different N / FLOP conventions")


def test_one_fit_is_not_a_comparison(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as err:
        main(["compare", str(_fit_json(tmp_path / "a.json", 1.8))])
    assert err.value.code == 2
