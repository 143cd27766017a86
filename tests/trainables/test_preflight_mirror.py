"""Preflight with a local mirror of the hub (XSTILTS_DATA_DIR): no hub needed."""

from pathlib import Path

from trainables.preflight import preflight

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "xtreme"


def test_a_mirror_stands_in_for_the_hub_and_for_local_files(monkeypatch):
    monkeypatch.setenv("XSTILTS_DATA_DIR", str(FIXTURES))
    assert preflight(["mnli", "anli", "xnli", "pawsx", "hellaswag"], []) == []


def test_a_mirror_without_the_file_names_it(monkeypatch, tmp_path):
    monkeypatch.setenv("XSTILTS_DATA_DIR", str(tmp_path))
    problems = preflight(["mnli"], [])
    assert len(problems) == 1 and str(tmp_path / "mnli" / "train.en.jsonl") in problems[0]


def test_a_target_trained_on_another_task_needs_that_task_too(monkeypatch, tmp_path):
    (tmp_path / "xquad").mkdir()
    (tmp_path / "xquad" / "validation.en.jsonl").write_text("")
    monkeypatch.setenv("XSTILTS_DATA_DIR", str(tmp_path))
    problems = preflight(["xquad"], [])  # trained on SQuAD, whose files are missing
    assert len(problems) == 1 and str(tmp_path / "squad" / "train.en.jsonl") in problems[0]


def test_a_relative_mirror_folder_fails_preflight(monkeypatch):
    # trials run in their own working directory, where the relative folder is not
    monkeypatch.chdir(FIXTURES.parent)
    monkeypatch.setenv("XSTILTS_DATA_DIR", "xtreme")
    problems = preflight(["sst2"], [])
    assert len(problems) == 1 and "XSTILTS_DATA_DIR='xtreme' is a relative path" in problems[0]
    assert str(FIXTURES) in problems[0]
