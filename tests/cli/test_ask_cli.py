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


@pytest.fixture
def elsewhere(tmp_path, monkeypatch):
    """A config in a sub-folder, its corpus missing, and the command run from another folder."""
    cfg_dir = tmp_path / "project" / "conf"
    cfg_dir.mkdir(parents=True)
    config = cfg_dir / "ragft.toml"
    config.write_text('[backend]\nprovider = "local"\n[models]\nembedding = "local/hashing-64"\n'
                      '[index]\ncorpus = "docs"\n')
    cwd = tmp_path / "somewhere"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.delenv("RAGFT_HOME", raising=False)
    return config


@pytest.mark.parametrize("command", ["ask", "search"])
def test_before_index_the_hint_names_the_config_and_no_folder_is_left(
    command: str, elsewhere, capsys
) -> None:
    assert main([command, "hello", "--config", "../project/conf/ragft.toml"]) == 2
    err = capsys.readouterr().err
    # A command that works from here: the config by absolute path (without it, `ragft index`
    # would build a different index under ./.ragft), and the corpus is said not to exist.
    assert f"ragft index DIR --config {elsewhere}" in err
    assert f"{elsewhere.parent / 'docs'} does not exist" in err
    assert not (elsewhere.parent / ".ragft").exists()  # `ask` before `index` creates nothing
    assert list(elsewhere.parent.parent.parent.joinpath("somewhere").iterdir()) == []


def test_index_of_a_missing_configured_corpus_says_where_to_set_it(elsewhere, capsys) -> None:
    assert main(["index", "--config", str(elsewhere), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"{elsewhere.parent / 'docs'} does not exist" in err
    assert f"[index] corpus in {elsewhere}" in err


def test_with_the_corpus_present_the_hint_is_the_index_command_for_this_config(
    elsewhere, capsys
) -> None:
    (elsewhere.parent / "docs").mkdir()
    assert main(["ask", "hello", "--config", str(elsewhere)]) == 2
    assert f"run `ragft index --config {elsewhere}`" in capsys.readouterr().err
