"""``ragft quickstart``: index the corpus (only what changed) and answer, offline."""

from __future__ import annotations

import re
from pathlib import Path

from ragft.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_quickstart_indexes_then_answers_and_reindexes_nothing_the_second_time(tmp_path, capsys) -> None:
    config = tmp_path / "ragft.toml"
    config.write_text(f'home = "{tmp_path / "home"}"\n[models]\nembedding = "local/hashing-256"\n'
                      f'[index]\ncorpus = "{ROOT / "corpus" / "docs"}"\n')
    assert main(["quickstart", "What is the meal per diem?", "--config", str(config), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "Backend: local" in out and "Question: What is the meal per diem?  [strategy: rag]" in out
    added = re.search(r"added (\d+), changed 0, removed 0, unchanged 0 documents; (\d+) chunks", out)
    assert added and int(added[1]) > 0 and int(added[2]) >= int(added[1])
    assert "$75" in out and "policies/travel" in out  # the answer and its source
    assert main(["quickstart", "--config", str(config), "--quiet", "--strategy", "rag"]) == 0
    again = capsys.readouterr().out
    assert f"added 0, changed 0, removed 0, unchanged {added[1]} documents; 0 chunks embedded" in again
    assert "daily meal allowance" in again  # the default question
    assert (tmp_path / "home" / "ledger.jsonl").is_file()
