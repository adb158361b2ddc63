"""Sweep grids: model shapes for a target N, N ladders, token budgets, isoFLOP points, scale-aware hyperparameters.

Pure functions of their arguments (no torch import), so a Hydra sweep such as
``train.flops=1e13,3e13 grid.offset=-2,-1,0,1,2`` resolves every job to the same
(shape, tokens, hyperparameters) on every machine.
"""

from scaling.grid.budgets import (
    CONVENTIONS,
    isoflop_point,
    n_ladder,
    n_opt_prior,
    tokens_for_budget,
    tokens_for_multiplier,
)
from scaling.grid.hparams import HParamLaws, HParams, hparams_for, hparams_for_shape
from scaling.grid.shapes import DEFAULT_ASPECT, heads_for, shape_for_params

__all__ = [
    "CONVENTIONS",
    "DEFAULT_ASPECT",
    "HParamLaws",
    "HParams",
    "heads_for",
    "hparams_for",
    "hparams_for_shape",
    "isoflop_point",
    "n_ladder",
    "n_opt_prior",
    "shape_for_params",
    "tokens_for_budget",
    "tokens_for_multiplier",
]
