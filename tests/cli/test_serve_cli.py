"""``ragft serve`` argument checks (the server itself runs in tests/serve/test_shutdown.py)."""

from __future__ import annotations

import pytest

from ragft.cli import main


def test_serve_is_a_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["serve", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "RAGFT_API_KEYS" in out and "--strategies" in out


@pytest.mark.parametrize("args, message", [
    (["--port", "70000"], "--port"),
    (["--workers", "0"], "serve.workers"),
])
def test_bad_options_are_errors_before_anything_starts(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str], tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("RAGFT_HOME", str(tmp_path / "home"))
    assert main(["serve", *args]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "home").exists()
