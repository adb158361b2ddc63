"""Plan a training run from a scaling law: model size, tokens, shape, cost.

:mod:`scaling.plan.planner` turns a law and a FLOP budget into a plan (N, D, a shape, its exact
FLOPs and GPU-hours, the inference-aware choice); :mod:`scaling.plan.cli` is ``scaling plan``.
"""
