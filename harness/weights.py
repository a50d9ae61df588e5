"""Comparing saved model folders in the trainer tests."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def changed(a: Path, b: Path) -> bool:
    """Whether any tensor differs between two saved full models."""
    wa, wb = weights(a), weights(b)
    return any(not torch.equal(wa[k], wb[k]) for k in wa)
