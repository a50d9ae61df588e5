"""Stage `init`: a from-scratch Qwen3-architecture model and tokenizer for a task's data.

For models trained from nothing (the demo, the tests' micro models): a byte-level BPE trained
on the records' text (plus the profile's termination and extension texts, so they are a few
tokens), `<think>`/`</think>` as normal tokens, a Qwen3-like chat template, a randomly
initialised `Qwen3ForCausalLM`, and `thinking_profile.json`. A pretrained model (Qwen3-0.6B)
skips this stage: SFT starts from its folder.

Launch: `thinkbudget train init --config train_fusion/recipes/demo/init.yaml`
"""

from __future__ import annotations

from pathlib import Path

from thinkbudget.budget.profile import BUILTIN_PROFILES
from thinkbudget.train_fusion.common import save_profile
from thinkbudget.train_fusion.config import InitConfig
from thinkbudget.train_fusion.data import read_jsonl


def run(cfg: InitConfig) -> Path:
    import torch
    from transformers import GenerationConfig, Qwen3Config, Qwen3ForCausalLM

    from thinkbudget.train_fusion.tokenizer import build_tokenizer

    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    spec = BUILTIN_PROFILES[cfg.profile]
    corpus = []
    for rec in read_jsonl(cfg.data):
        corpus += [rec.get("question", ""), rec["reasoning"], rec["answer"]]
    corpus += [" /think", " /no_think"] * 100
    tok = build_tokenizer(
        out, corpus, vocab_size=cfg.vocab_size, extra=[spec.termination_text, spec.extension_text]
    )
    torch.manual_seed(cfg.seed)
    config = Qwen3Config(
        vocab_size=len(tok),
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_hidden_layers,
        num_attention_heads=cfg.num_attention_heads,
        num_key_value_heads=cfg.num_key_value_heads,
        head_dim=cfg.head_dim,
        max_position_embeddings=cfg.max_position_embeddings,
        tie_word_embeddings=True,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        bos_token_id=None,
        dtype="float32",
    )
    model = Qwen3ForCausalLM(config)
    model.save_pretrained(out, safe_serialization=True)
    GenerationConfig(eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id).save_pretrained(
        out
    )
    save_profile(spec, out)
    n = sum(p.numel() for p in model.parameters())
    print(f"init: {n / 1e6:.2f}M parameters, vocabulary {len(tok)}, written to {out}")
    return out
