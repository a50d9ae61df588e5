"""Turn per-row constraints from `BudgetState.constraints()` into logits edits.

Shared by the vLLM and transformers adapters: a handful of indexed writes per step, grouped
by action, so the cost grows with the number of constrained rows, never with sequence length.
"""

from __future__ import annotations

import torch

from thinkbudget.budget.state import Action


def apply_constraints(
    logits: torch.Tensor, rows: list[tuple[int, Action, int]], end_id: int
) -> torch.Tensor:
    """Edit `logits` in place for every (row index, action, token) that is not FREE."""
    groups: dict[Action, tuple[list[int], list[int]]] = {}
    for index, action, token in rows:
        if action is not Action.FREE:
            idx, tok = groups.setdefault(action, ([], []))
            idx.append(index)
            tok.append(token)
    if not groups:
        return logits
    device = logits.device
    for action, (idx, tok) in groups.items():
        r = torch.tensor(idx, device=device, dtype=torch.long)
        t = torch.tensor(tok, device=device, dtype=torch.long)
        if action is Action.FORCE:
            logits[r] = float("-inf")
            logits[r, t] = 0.0
        elif action is Action.BAN:
            logits[r, t] = float("-inf")
        else:  # REDIRECT: the end delimiter's mass goes to the extension's first token
            logits[r, t] = torch.logaddexp(logits[r, t], logits[r, end_id])
            logits[r, end_id] = float("-inf")
    return logits
