"""Stage `export`: a folder that `thinkbudget serve --model FOLDER` serves with no other flag.

Loads a stage result (full model, or LoRA adapter merged into its base), and writes the
weights (safetensors, in `dtype`) with their generation config, the tokenizer with its chat
template, and `thinking_profile.json`. Then it checks the folder the way the server will:
the profile must resolve against the saved tokenizer. Files get the permissions the umask
gives (safetensors writes weights 0600, which a server run by another user cannot read).

Launch: `thinkbudget train export --config train_fusion/recipes/demo/export.yaml`
(or `--model OUT/final --output_dir models/mine`)
"""

from __future__ import annotations

import os
from pathlib import Path

from thinkbudget.train_fusion.common import load_model, load_tokenizer_profile, save_profile
from thinkbudget.train_fusion.config import ExportConfig


def run(cfg: ExportConfig) -> Path:
    tokenizer, profile = load_tokenizer_profile(cfg.model)
    model = load_model(cfg.model, cfg.dtype)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    save_profile(profile.spec, out)
    umask = os.umask(0)
    os.umask(umask)
    for path in out.iterdir():
        if path.is_file():
            path.chmod(0o666 & ~umask)
    load_tokenizer_profile(out)  # what `thinkbudget serve` resolves at start-up
    print(f"export: wrote {out}")
    return out
