"""LoRA adapters served over the base model, as `vllm serve --enable-lora --lora-modules`.

`--lora-modules name=path ...` (or JSON `{"name": ..., "path": ...}` items) names adapter
folders; a request whose `model` is an adapter's name runs with that adapter (vLLM's
`LoRARequest`). A folder that `thinkbudget train sft|grpo` wrote with LoRA carries its
`thinking_profile.json`: its termination text, extension text and budget prompt apply to that
adapter's requests only. Its thinking delimiters must be the base model's (the engine's logits
processor reads those from the base), else the server refuses to start.

With `VLLM_ALLOW_RUNTIME_LORA_UPDATING=True` in the environment (vLLM's switch), adapters
are also loaded and unloaded at run time (`serve/api/lora.py`), as with `vllm serve`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from thinkbudget.budget.config import ConfigError
from thinkbudget.budget.profile import ProfileSpec, ThinkingProfile


@dataclass(frozen=True)
class Adapter:
    name: str
    path: str
    request: Any  # vllm LoRARequest
    profile: ThinkingProfile | None


def parse_modules(items: list[str]) -> list[tuple[str, str]]:
    """(name, path) per `name=path` or JSON item."""
    out = []
    for item in items:
        if item.lstrip().startswith("{"):
            data = json.loads(item)
            name, path = data.get("name"), data.get("path")
        else:
            name, _, path = item.partition("=")
        if not name or not path:
            raise ConfigError(f"--lora-modules item {item!r}: use NAME=PATH")
        out.append((name, path))
    return out


def adapter_profile(path: str, tokenizer: Any, base: ThinkingProfile | None):
    """The adapter's own profile (its thinking_profile.json), else the base model's."""
    file = Path(path) / "thinking_profile.json"
    if base is None or not file.is_file():
        return base
    spec = ProfileSpec.load(str(file))
    if (spec.start, spec.end) != (base.spec.start, base.spec.end):
        raise ConfigError(
            f"the adapter {path} thinks between {spec.start!r} and {spec.end!r}, the base "
            f"model between {base.spec.start!r} and {base.spec.end!r}: serve it merged "
            "(thinkbudget train export)"
        )
    return ThinkingProfile.from_tokenizer(tokenizer, spec)


def load_adapters(config: Any, tokenizer: Any, base: ThinkingProfile | None) -> dict:
    """name -> Adapter for `--lora-modules` (a ConfigError names what is wrong)."""
    if not config.lora_modules:
        return {}
    if not config.engine.get("enable_lora"):
        raise ConfigError("--lora-modules needs --enable-lora (as with vllm serve)")
    adapters = {}
    for i, (name, path) in enumerate(parse_modules(config.lora_modules), start=1):
        adapters[name] = make_adapter(name, path, i, tokenizer, base)
    return adapters


def make_adapter(name: str, path: str, lora_id: int, tokenizer: Any, base: Any) -> Adapter:
    """An adapter and its vLLM `LoRARequest` (a ConfigError when the folder is missing or
    its profile's delimiters are not the base model's)."""
    from vllm.lora.request import LoRARequest

    if not Path(path).is_dir():
        raise ConfigError(f"the LoRA adapter folder {path!r} does not exist")
    profile = adapter_profile(path, tokenizer, base)
    return Adapter(name, path, LoRARequest(name, lora_id, path), profile)
