"""The core's secret masking: what a provider knows to hide, how it hides it, and that it hides
it before anything is cut (issue 20, "Deliver 1")."""

from __future__ import annotations

import base64
import json

import httpx
import pytest
from pydantic import SecretStr

from llm_factory_core import (
    AuthenticationError,
    ConfigurationError,
    LLMFactory,
    ModelConfig,
    ProviderError,
    ServerError,
)
from llm_factory_core._errors import MAX_ERROR_FIELD, MAX_ERROR_MESSAGE
from llm_factory_core._secrets import MAX_RUNTIME_SECRETS, SecretSet, display_url
from llm_factory_core.providers import Provider, ProviderSettings, mask_secret

KEY = "sk-proj-" + "a1b2c3d4e5f6" * 4  # 56 characters


class TokenSettings(ProviderSettings):
    """A third-party plugin's settings: its own secret fields, one of them nested."""

    my_token: SecretStr | None = None
    extra_credentials: dict[str, SecretStr] = {}
    region: str = "eu"


class TokenProvider(Provider):
    key = "token-test"
    Settings = TokenSettings


def provider(**settings: object) -> Provider:
    return TokenProvider(
        TokenSettings.model_validate({"model": "m", **settings}), client=httpx.AsyncClient(), name="token-test/m#1"
    )


def test_mask_secret_shows_at_most_four_characters_and_none_of_a_short_secret() -> None:
    assert mask_secret("x" * 15) == "****"
    assert mask_secret("abcdefghijklmnop") == "****mnop"
    assert mask_secret(SecretStr(KEY)) == "****" + KEY[-4:]
    assert mask_secret("k") == "****" and mask_secret(None) == "<none>"


def test_every_secret_field_of_a_plugins_settings_is_found_without_code() -> None:
    p = provider(
        api_key="api-key-0000000000000001",
        my_token="plugin-token-000000000002",
        extra_credentials={"a": "nested-secret-00000000003"},
        headers={"x-tenant": "header-secret-00000000004", "x-flag": "on"},
        region="eu-central-secret-looking",  # a plain str field is not a secret
    )
    secrets = set(p.secrets())
    assert {
        "api-key-0000000000000001",
        "plugin-token-000000000002",
        "nested-secret-00000000003",
        "header-secret-00000000004",
    } <= secrets
    assert "eu-central-secret-looking" not in secrets
    assert "on" not in secrets  # too short to mask without garbling every message


def test_error_masks_every_secret_in_message_code_and_param() -> None:
    p = provider(api_key=KEY, my_token="plugin-token-000000000002", headers={"x-tenant": "header-secret-00000000004"})
    echo = f"{KEY} plugin-token-000000000002 header-secret-00000000004"
    error = p.error(AuthenticationError, echo, code=echo, param=echo, status=401)
    for text in (error.message, error.code, error.param, str(error), repr(error)):
        assert text is not None
        assert KEY[:-4] not in text and "plugin-token" not in text and "header-secret" not in text
        assert "****" + KEY[-4:] in text  # masked, still recognisable
    assert p.error(ServerError, "x", param=12345678).param == "12345678"  # a non-string param is text


def test_runtime_secrets_are_masked_and_bounded() -> None:
    p = provider(api_key=KEY)
    p.add_secret("refreshed-token-000000000001")
    p.add_secret(SecretStr("env-fallback-key-0000000002"))
    p.add_secret(None)
    message = p.error(ServerError, "refreshed-token-000000000001 env-fallback-key-0000000002").message
    assert "refreshed" not in message and "env-fallback" not in message
    for i in range(MAX_RUNTIME_SECRETS + 10):
        p.add_secret(f"rotated-token-{i:016d}")
    newest = f"rotated-token-{MAX_RUNTIME_SECRETS + 9:016d}"
    assert newest not in p.mask(newest)
    assert KEY not in p.mask(KEY)  # configured secrets are never pushed out
    assert len(p.secrets()) < 10 * (MAX_RUNTIME_SECRETS + 10)


def test_a_secret_is_masked_before_the_message_is_cut() -> None:
    p = provider(api_key=KEY)
    # The key straddles the cap: masking after cutting would leave its first part in the message.
    message = p.error(ServerError, "x" * (MAX_ERROR_MESSAGE - 10) + KEY + "y" * 100).message
    assert KEY[:10] not in message and KEY[:6] not in message
    assert "more characters" in message and len(message) < MAX_ERROR_MESSAGE + 40
    code = p.error(ServerError, "m", code="c" * (MAX_ERROR_FIELD - 5) + KEY).code
    assert code is not None and KEY[:5] not in code


def test_a_secret_cut_by_a_plugin_before_masking_is_masked_too() -> None:
    # A plugin that cuts an upstream body itself (``body[:300]``) leaves the key's beginning last.
    p = provider(api_key=KEY)
    cut = ("z" * 290 + KEY)[:300]
    assert KEY[:10] in cut
    assert KEY[:10] not in p.error(ServerError, cut).message
    assert p.mask("ends with sk-") == "ends with sk-"  # three characters are nothing to hide


def test_the_default_parse_error_masks_the_whole_body_before_cutting() -> None:
    p = provider(api_key=KEY)
    body = ("<html>" + "x" * 495 + KEY + "</html>").encode()  # the old cut was at 500 characters
    error = p.parse_error(502, httpx.Headers(), body)
    assert KEY[:8] not in error.message and "****" + KEY[-4:] in error.message


def test_echoed_variants_of_a_secret_are_masked() -> None:
    secret = 'pa"ss/wörd\\-000000000001'
    masked = SecretSet([secret]).mask(json.dumps({"echo": secret}) + " " + json.dumps(secret, ensure_ascii=False))
    assert "000000000001" not in masked.replace("****0001", "")
    from urllib.parse import quote

    assert "000000000001" not in SecretSet([secret]).mask(quote(secret, safe="")).replace("****0001", "")


def test_provider_error_messages_are_one_line_and_bounded() -> None:
    error = ProviderError("bad\r\nINFO forged line\u2028and\x1b[31mred", code="a\nb", param="c\rd")
    assert "\n" not in str(error) and "\r" not in str(error) and "\x1b" not in str(error)
    assert "\u2028" not in error.message
    assert "\\n" in error.message and error.code == "a\\nb" and error.param == "c\\rd"
    huge = ProviderError("e" * 50_000_000)
    assert len(huge.message) < MAX_ERROR_MESSAGE + 40


def test_status_urls_hide_userinfo_and_query() -> None:
    assert display_url("https://user:pa@ss@host.test:8443/v1?key=AIza123#frag") == "https://****@host.test:8443/v1"
    assert display_url("https://host.test/v1") == "https://host.test/v1"
    assert display_url(None) is None

    class Proxied(TokenProvider):
        default_api_base = "https://svc:hunter2-password@proxy.test/v1?token=abc"

    settings = TokenSettings(model="m")
    assert Proxied.display_api_base(settings) == "https://****@proxy.test/v1"


def test_api_base_with_credentials_is_a_clear_configuration_error() -> None:
    # Before: httpx replaced the key's Authorization header with the URL's Basic credentials and
    # aiohttp raised a bare ValueError (an unhandled 500 in the gateway); status showed the password.
    config = ModelConfig(
        provider="openai", model_name="m", api_key=KEY, api_base="https://user:hunter2-password@proxy.test/v1"
    )
    with pytest.raises(ConfigurationError) as info:
        LLMFactory([config])
    message = str(info.value)
    assert "api_base must not contain credentials" in message and "headers" in message
    assert "hunter2" not in message


def test_api_base_credentials_and_query_values_are_secrets_for_plugins_that_allow_them() -> None:
    settings = TokenSettings.model_construct(
        model="m", api_base="https://svc:hunter2-password@proxy.test/v1?k=query-secret-1"
    )
    p = TokenProvider(settings, client=httpx.AsyncClient(), name="t")
    basic = base64.b64encode(b"svc:hunter2-password").decode()
    masked = p.mask(f"Authorization: Basic {basic}; pw=hunter2-password; k=query-secret-1")
    assert basic not in masked and "hunter2" not in masked and "query-secret-1" not in masked


def test_deployment_labels_carry_no_key_material() -> None:
    configs = [
        ModelConfig(provider="openai", model_name="gpt-4o", api_key=KEY, api_base="https://a.test/v1"),
        ModelConfig(provider="openai", model_name="gpt-4o", api_key="short-key", api_base="https://b.test/v1"),
    ]
    with LLMFactory(configs) as f:
        assert [d.name for d in f.deployments] == ["openai/gpt-4o#1", "openai/gpt-4o#2"]
        assert [s.api_key for s in f.status()] == ["****" + KEY[-4:], "****"]  # short: no suffix at all


def test_settings_repr_masks_header_values_and_credential_named_fields() -> None:
    settings = TokenSettings(
        model="m", headers={"x-tenant": "header-secret-00000000004"}, my_token="plugin-token-000000000002"
    )
    shown = repr(settings) + str(settings)
    assert "header-secret" not in shown and "plugin-token" not in shown
    assert "x-tenant" in shown and "'m'" in shown  # the rest stays readable

    class IdSettings(TokenSettings):
        access_key_id: str | None = None

    assert "EXAMPLEKEYID" not in repr(IdSettings(model="m", access_key_id="AKIAEXAMPLEKEYID0001"))
