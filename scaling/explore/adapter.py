"""The explorer's only imports from the rest of ``scaling``: one place to fix when modules move.

The explorer reads its inputs through stable interfaces -- run records (:mod:`scaling.records`),
the record-to-row mapping, the fit JSON of ``scaling fit --json`` and the planner's public
functions -- and every such import lives here, so a module move is a one-file change.
"""

from __future__ import annotations

from scaling.accounting import flops_per_token
from scaling.fit.points import group_by_log
from scaling.grid.shapes import shape_for_params
from scaling.plan.laws import LAWS, PF_DAY, Allocation, FittedLaw, KaplanLaw, Law, load_fit
from scaling.plan.planner import REFERENCE_MODELS, make_plan, place_models, plan_shape
from scaling.records import FLOP_CONVENTIONS, PARAM_COUNTS, load_records, record_to_row

__all__ = [
    "FLOP_CONVENTIONS",
    "LAWS",
    "PF_DAY",
    "PARAM_COUNTS",
    "REFERENCE_MODELS",
    "Allocation",
    "FittedLaw",
    "KaplanLaw",
    "Law",
    "flops_per_token",
    "group_by_log",
    "load_fit",
    "load_records",
    "make_plan",
    "place_models",
    "plan_shape",
    "record_to_row",
    "shape_for_params",
]
