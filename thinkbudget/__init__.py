"""thinkbudget: inference-time thinking budgets for reasoning models.

One namespace over the project's top-level folders (see pyproject.toml):
- `thinkbudget.budget` (budget/): the engine-free core;
- `thinkbudget.serve` (serve/) and `thinkbudget.train_fusion` (train_fusion/): siblings on
  the core that never import each other;
- `thinkbudget.cli` and `thinkbudget.launch` (thinkbudget/): the `thinkbudget` command,
  the one place that sees both siblings.
"""

__version__ = "0.1.0"
