"""vLLM's server flags are `thinkbudget serve` flags, from vLLM's own `FrontendArgs`: every
one `vllm serve` takes is accepted, and each is acted on as vllm serve acts on it or, set to
anything but vLLM's default, refused at start with a line naming it. A real server started
with TLS, a root path, forced usage, CORS and the docs off does what those flags say."""

from __future__ import annotations

import datetime
import functools
import ipaddress
import json
from pathlib import Path

import httpx
import pytest

from harness.tiny import tiny_server_args
from thinkbudget.cli import build_parser, config_from
from thinkbudget.launch import ServerProcess
from thinkbudget.serve.config import ServerConfig

ROOT = Path(__file__).resolve().parent.parent


@functools.cache
def parser():
    return build_parser()  # adopts vLLM's flags: a few seconds, built once here


def config_of(*argv: str) -> ServerConfig:
    return config_from(ServerConfig, parser().parse_args(["serve", *argv]), "serve", False)


def test_every_vllm_server_flag_is_a_serve_flag():
    from vllm.entrypoints.launchers.cli_args import FrontendArgs
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    theirs = set(FrontendArgs.add_cli_args(FlexibleArgumentParser())._option_string_actions)
    theirs -= {"-h", "--help"}
    serve = parser()._subparsers._group_actions[0].choices["serve"]
    assert len(theirs) > 60 and theirs <= set(serve._option_string_actions)


def test_acted_on_server_flags_reach_uvicorn_and_cors():
    from thinkbudget.serve.frontend_args import cors_settings, uvicorn_settings

    cfg = config_of(
        *["--ssl-keyfile", "k.pem", "--ssl-certfile", "c.pem", "--ssl-ca-certs", "ca.pem"],
        *["--root-path", "/api", "--uvicorn-log-level", "warning"],
        *["--disable-uvicorn-access-log", "--allowed-origins", '["https://a.example"]'],
        *["--allow-credentials", "--max-log-len", "100"],
    )
    assert uvicorn_settings(cfg.frontend, cfg.log_level) == {
        "ssl_keyfile": "k.pem",
        "ssl_certfile": "c.pem",
        "ssl_ca_certs": "ca.pem",
        "log_level": "warning",
        "access_log": False,
    }
    assert cors_settings(cfg.frontend) == {
        "allow_origins": ["https://a.example"],
        "allow_credentials": True,
        "allow_methods": ["*"],
        "allow_headers": ["*"],
    }
    assert cors_settings(config_of().frontend) is None  # CORS off by default


@pytest.mark.parametrize(
    "flags",
    [
        ("--tool-server", "demo"),
        ("--response-role", "bot"),
        ("--return-tokens-as-token-ids",),
        ("--enable-request-id-headers",),
    ],
)
def test_server_flags_not_served_are_refused_by_name(flags):
    with pytest.raises(SystemExit) as exc:
        config_of(*flags)
    assert flags[0] in str(exc.value.code) and "does not serve" in str(exc.value.code)


def test_default_chat_template_kwargs_sit_under_each_request(tokenizer):
    """`--default-chat-template-kwargs '{"enable_thinking": false}'` (a common Qwen3 set-up):
    a request that says nothing does not think; one that asks a budget, an effort or
    `enable_thinking` gets what it asks; other defaults reach the template under the
    request's own."""
    from thinkbudget.budget.profile import ThinkingProfile
    from thinkbudget.budget.resolve import ThinkingMode
    from thinkbudget.serve.api.chat import template_kwargs
    from thinkbudget.serve.budgeting import plan_thinking
    from thinkbudget.serve.protocol import ChatCompletionRequest

    defaults = {"enable_thinking": False, "style": "terse"}
    profile = ThinkingProfile.from_tokenizer(tokenizer)

    def planned(**fields):
        req = ChatCompletionRequest(messages=[{"role": "user", "content": "hi"}], **fields)
        settings, enable = plan_thinking(
            req, profile, max_model_len=1024, effort_budgets={"low": 5}, default_budget=None,
            reasoning_effort=req.reasoning_effort, template_kwargs=req.chat_template_kwargs,
            default_enable=defaults["enable_thinking"],
        )  # fmt: skip
        return settings.mode, template_kwargs(req, enable, defaults)

    mode, kwargs = planned()
    assert mode is ThinkingMode.DISABLED and kwargs == {"enable_thinking": False, "style": "terse"}
    mode, kwargs = planned(thinking_budget=10)
    assert mode is ThinkingMode.BUDGET and "enable_thinking" not in kwargs
    assert planned(reasoning_effort="low")[0] is ThinkingMode.BUDGET
    mode, kwargs = planned(chat_template_kwargs={"enable_thinking": True, "style": "long"})
    assert mode is ThinkingMode.UNLIMITED and kwargs == {"enable_thinking": True, "style": "long"}


def test_default_values_and_yaml_keys_are_accepted(tmp_path):
    assert config_of("--response-role", "assistant").frontend == {"response_role": "assistant"}
    recipe = tmp_path / "serve.yaml"
    recipe.write_text("root_path: /api\nuvicorn_log_level: error\n")
    cfg = config_of("--config", str(recipe))
    assert cfg.frontend == {"root_path": "/api", "uvicorn_log_level": "error"}


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A key and a certificate for 127.0.0.1 (the certificate is its own CA)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    key_path, cert_path = folder / "key.pem", folder / "cert.pem"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path


@pytest.mark.slow
def test_a_server_with_tls_root_path_usage_cors_and_no_docs(tiny_model, tmp_path):
    key, cert = self_signed(tmp_path)
    args = tiny_server_args(
        tiny_model,
        *["--ssl-keyfile", str(key), "--ssl-certfile", str(cert), "--root-path", "/api"],
        *["--enable-force-include-usage", "--disable-fastapi-docs"],
        *["--allowed-origins", '["https://app.example"]', "--max-log-len", "50"],
        *["--log-level", "info"],
    )
    log = ROOT / ".cache" / "logs" / "test-server-flags.log"
    with ServerProcess(args, log, ca_cert=cert) as srv:
        with pytest.raises(httpx.TransportError):  # TLS only: plain HTTP is dropped
            httpx.get(srv.url.replace("https", "http") + "/health", timeout=5)
        get = httpx.Client(base_url=srv.url, verify=str(cert), timeout=60)
        assert get.get("/v1/models").status_code == 200
        assert get.get("/api/v1/models").status_code == 200  # behind a prefix-keeping proxy
        assert get.get("/docs").status_code == 404 and get.get("/openapi.json").status_code == 404
        cors = get.options(
            "/v1/models",
            headers={"Origin": "https://app.example", "Access-Control-Request-Method": "GET"},
        )
        assert cors.headers["access-control-allow-origin"] == "https://app.example"
        # a stream that did not ask for usage ends with it (--enable-force-include-usage)
        body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, "stream": True}
        with get.stream("POST", "/v1/chat/completions", json=body) as r:
            chunks = [json.loads(x[6:]) for x in r.iter_lines() if x.startswith("data: {")]
        assert chunks[-1]["usage"]["completion_tokens"] >= 1
        # the one flag given that changes nothing is named at start (log level info)
    assert "max_log_len" in log.read_text()


def test_tokenize_renders_with_the_default_chat_template_kwargs():
    """`/tokenize` with `messages` counts the prompt the chat endpoint sends: the server's
    default template arguments under the request's own (Qwen3 template: `enable_thinking:
    false` closes thinking in the prompt)."""
    from types import SimpleNamespace

    from transformers import AutoTokenizer

    from harness.fixtures import qwen3_model
    from thinkbudget.serve.api.tokenize import TokenizeRequest, render_chat
    from thinkbudget.serve.templating import SafeTemplate

    tok = AutoTokenizer.from_pretrained(qwen3_model())
    h = SimpleNamespace(template=SafeTemplate(tok))
    messages = [{"role": "user", "content": "hi"}]
    text = lambda body, defaults: tok.decode(render_chat(h, body, defaults))  # noqa: E731
    plain = TokenizeRequest(messages=messages)
    assert "</think>" not in text(plain, {})
    assert text(plain, {"enable_thinking": False}).endswith("<think>\n\n</think>\n\n")
    asked = TokenizeRequest(messages=messages, chat_template_kwargs={"enable_thinking": True})
    assert "</think>" not in text(asked, {"enable_thinking": False})
