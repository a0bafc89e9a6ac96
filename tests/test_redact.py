"""ragft.redact: registered secrets and key-shaped tokens are masked everywhere."""

from __future__ import annotations

import traceback

import pytest

from ragft.errors import ModelError, RagftError
from ragft.redact import MASK, redact, redact_data, register_secret


def test_registered_secret_is_masked_wherever_it_appears() -> None:
    secret = "custom-proxy-token-5a1b2c3d4e"  # not key-shaped: only registration catches it
    assert redact(f"rejected {secret}!") == f"rejected {secret}!"
    register_secret(secret)
    assert redact(f"rejected {secret}! ({secret})") == f"rejected {MASK}! ({MASK})"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Incorrect API key provided: sk-proj-AbCdEf0123456789xyz.", "Incorrect API key provided: sk-***."),
        ("key sk-abcdefgh12 and rk-live_0000aaaa", "key sk-*** and rk-***"),
        ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.x", f"Authorization: Bearer {MASK}"),
        ('{"auth": "Bearer abc123def"}', f'{{"auth": "Bearer {MASK}"}}'),
    ],
)
def test_key_shaped_tokens_are_masked_without_registration(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_ordinary_text_is_untouched() -> None:
    text = "Ask-me-anything: the task-based sk-iing trip (risk-free) costs $75; bear with us."
    assert redact(text) == text


def test_short_values_are_not_registered() -> None:
    register_secret("abc")  # would mask ordinary words
    assert redact("abcdef abc") == "abcdef abc"


def test_redact_data_masks_nested_strings_and_keeps_other_values() -> None:
    data = {"error": ["sk-abcdefgh123456", {"n": 3, "ok": True}], "sk-keyname12345": None}
    assert redact_data(data) == {"error": ["sk-***", {"n": 3, "ok": True}], "sk-***": None}


def test_ragft_errors_mask_on_construction_including_tracebacks() -> None:
    secret = "-".join(["echoed", "secret", "value", "99"])  # so the source line shown does not hold it
    register_secret(secret)
    try:
        try:
            raise RuntimeError("inner")
        except RuntimeError as inner:
            raise ModelError(f"server said: {secret}", model="m") from inner
    except RagftError as exc:
        shown = "".join(traceback.format_exception(exc)) + repr(exc) + str(exc.args)
    assert "echoed-secret-value-99" not in shown
    assert f"server said: {MASK}" in shown
