"""scaling: measure neural scaling laws on real hardware.

Plan compute-optimal runs, sweep grids of GPT-style transformers with exact FLOP
accounting, fit Kaplan and Chinchilla laws with uncertainty, and compare recipes.
"""

__version__ = "0.1.0"
