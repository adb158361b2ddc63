"""Training one model: budget, schedule, optimiser, loop, checkpoints and the Hydra app."""
