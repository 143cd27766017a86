"""``xstilts tasks``: the registry as a table and as JSON."""

import json

from search.cli import main

PAPER = {"intermediate": {"anli", "ccg", "commonsenseqa", "cosmosqa", "hellaswag", "mnli", "qqp",
                          "squad", "sst2"},
         "target": {"xnli", "pawsx", "udpos", "panx", "xquad", "mlqa", "tydiqa", "bucc", "tatoeba"}}


def test_tasks_json_lists_the_paper_tasks_with_their_facts(capsys):
    assert main(["tasks", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    for role, names in PAPER.items():
        assert names <= set(rows), names - set(rows)
        assert {rows[n]["role"] for n in names} == {role}
    for r in rows.values():
        assert r["format"] in {"classification", "multiple_choice", "span_qa", "tagging", "retrieval"}
        assert r["languages"] and r["metric"] and ":" in r["source"]
    assert rows["xquad"]["format"] == "span_qa" and rows["panx"]["format"] == "tagging"
    assert rows["bucc"]["format"] == "retrieval" and {"de", "zh"} <= set(rows["bucc"]["languages"])


def test_tasks_table_and_role_filter(capsys):
    assert main(["tasks", "--role", "target"]) == 0
    out = capsys.readouterr().out
    assert "xnli" in out and "tatoeba" in out and "mnli" not in out
