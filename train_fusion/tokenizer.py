"""A byte-level BPE tokenizer with a Qwen3-like chat template, for models trained from
nothing (`thinkbudget train init`, and the tests' tiny model).

`<|im_start|>`, `<|im_end|>`, `<|endoftext|>` are special tokens; `<think>` / `</think>` are
added tokens (single ids, as in Qwen3). The chat template follows Qwen3's: `enable_thinking`
false pre-fills an empty block, earlier assistant turns lose their reasoning.
"""

from __future__ import annotations

from pathlib import Path

from thinkbudget.budget.profile import QWEN3_TERMINATION

CHAT_TEMPLATE = """\
{%- for message in messages %}
{%- if message.role == 'assistant' %}
{%- set content = message.content %}
{%- if '</think>' in content %}{%- set content = content.split('</think>')[-1].lstrip('\\n') %}{%- endif %}
{{- '<|im_start|>assistant\\n' + content + '<|im_end|>\\n' }}
{%- else %}
{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}
{%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
{{- '<|im_start|>assistant\\n' }}
{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}
{%- endif %}"""

SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
THINK = ["<think>", "</think>"]


def build_tokenizer(
    out: Path, corpus: list[str], vocab_size: int = 400, extra: list[str] | None = None
):
    """Byte-level BPE trained on `corpus` (+ `extra` texts, repeated so they get merged)."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    extra = (extra or [QWEN3_TERMINATION, "Wait, let me check.", "The answer is"]) * 20
    tok.train_from_iterator(corpus + extra, trainer)
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in THINK])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        chat_template=CHAT_TEMPLATE,
    )
    fast.save_pretrained(out)
    return fast
