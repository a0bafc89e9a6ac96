"""``ragft ask`` and ``ragft search`` argument checks through the real ``ragft`` entry point."""

from __future__ import annotations

import pytest

from ragft.cli import main


@pytest.mark.parametrize("command", ["ask", "search"])
@pytest.mark.parametrize("text", ["", "   "])
def test_an_empty_question_is_a_usage_error_not_a_traceback(
    command: str, text: str, capsys: pytest.CaptureFixture[str], tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("RAGFT_HOME", str(tmp_path / "home"))
    with pytest.raises(SystemExit) as exc:
        main([command, text])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "is empty" in err and "Traceback" not in err
    assert not (tmp_path / "home").exists()  # refused before anything was opened
