"""``xstilts report``: the page shows the numbers ``search.report`` computes (hand-written
Parquet with a known answer), says what is missing where it cannot show them, reads a
running sweep's parts, and builds from 10,000 trials' tables; a real headless Chromium
opens it. The page of a real sweep: test_sweep_ray."""

import json
import re
import sys
from pathlib import Path

import pytest

from search.cli import main
from search.page import SECTIONS, report_numbers, write_report
from search.query import load_sweep
from search.report import task_effects
from search.results import CORE_COLUMNS, LANGUAGE_COLUMNS, _table, write_part, write_table
from tests.browser import open_page
from tests.search.test_report import _language_rows, _rows, known  # noqa: F401 - fixture

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))


def assert_report_renders(sweep_path: str, out: Path, *, figures: set[str], artifact: str,
                          missing: tuple[str, ...] = ()):
    """Build the report of ``sweep_path`` and open it in Chromium: no console error, every
    section there, each of ``figures`` (and no other) drawn with more than one colour in
    its box, each of ``missing`` said on the page. Returns what the browser saw."""
    page = write_report(sweep_path, str(out))
    for name in figures:
        assert (out / "figures" / f"{name}.png").stat().st_size > 1000
    seen = open_page(page, artifact=artifact)
    assert seen.errors == []
    assert list(seen.sections) == list(SECTIONS)
    assert set(seen.figures) == figures, seen.figures
    flat = {name: n for name, n in seen.figures.items() if n <= 1}
    assert not flat, f"figures drawn as one flat colour: {flat}"
    text = " ".join(" ".join(seen.sections.values()).split())
    for said in missing:
        assert said in text, f"the page does not say {said!r}"
    return seen


def test_the_page_shows_the_known_effect_task_effects_finds(known, tmp_path, capsys):  # noqa: F811
    seen = assert_report_renders(
        known, tmp_path / "page", artifact="report-known-effects.png",
        figures={"progress", "calibration", "effects", "languages", "cost"},
        missing=("no parameter importances", "no sweep manifest", "no ece heatmap"))
    effect = task_effects(known).set_index(["task", "metric"]).loc[("demo-match", "zs_accuracy")]
    assert effect["effect"] == pytest.approx(0.1, abs=0.01)
    shown = re.search(r"demo-match\s+zs_accuracy\s+([+-]\d\.\d{4})\s+([+-]\d\.\d{4})\s+"
                      r"([+-]\d\.\d{4})", seen.sections["tasks"])
    assert shown, seen.sections["tasks"]
    assert [float(v) for v in shown.groups()] == pytest.approx(
        [effect["effect"], effect["low"], effect["high"]], abs=5e-5)
    # --json prints the page's numbers: the same effects, statuses and languages
    assert main(["report", known, "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert list(printed) == ["sweep", *SECTIONS]
    assert printed["tasks"]["effects"] == json.loads(json.dumps(
        report_numbers(known)["tasks"]["effects"]))
    row = next(r for r in printed["tasks"]["effects"]
               if (r["task"], r["metric"]) == ("demo-match", "zs_accuracy"))
    assert row["effect"] == pytest.approx(effect["effect"])
    assert printed["progress"]["counts"] == {"finished": 80, "stopped": 1, "error": 1}
    assert printed["languages"]["accuracy"]["languages"] == ["de", "sw"]  # de gains more


def _write(path, rows, languages=()):
    write_table(_table(rows, CORE_COLUMNS), path, "trials")
    write_table(_table(list(languages), LANGUAGE_COLUMNS), path, "languages")
    return path


def test_sweeps_that_cannot_show_everything_say_what_is_missing(tmp_path, capsys):
    rows = _rows(n=6)
    errors = [{**r, "status": "error", "objective": None, "zs_accuracy": None, "zs_ece": None,
               "error": "Traceback\nValueError: bad batch"} for r in rows]
    retrieval = [{**r, "zs_ece": None, "config/target": "tatoeba"} for r in rows[:6]]
    cases = {
        "empty": (_write(str(tmp_path / "empty"), []), {"no trial has been recorded yet"}),
        "errors": (_write(str(tmp_path / "errors"), errors),
                   {"every trial failed (8 error)", "ValueError: bad batch"}),
        "retrieval": (_write(str(tmp_path / "retrieval"), retrieval,
                             [{**r, "task": "tatoeba"} for r in _language_rows(retrieval)]),
                      {"the trials of target 'tatoeba' have no ECE: a retrieval sweep from "
                       "before retrieval calibration",
                       "this retrieval sweep's trials have no ECE per language"}),
    }
    figures = {"empty": set(), "errors": {"progress", "cost"},
               "retrieval": {"progress", "effects", "languages", "cost"}}
    for name, (path, said) in cases.items():
        assert_report_renders(path, tmp_path / f"page-{name}", figures=figures[name],
                              artifact=f"report-{name}.png", missing=tuple(said))
        assert main(["report", path, "--out", str(tmp_path / f"cli-{name}")]) == 0
        assert "report.html" in capsys.readouterr().out
    numbers = report_numbers(cases["retrieval"][0])
    metrics = {r["metric"] for r in numbers["tasks"]["effects"]}
    assert metrics == {"objective", "zs_accuracy"}  # no ECE to take effects of


def test_the_report_of_a_running_sweep_reads_its_parts(tmp_path):
    path = str(tmp_path / "running")
    rows = _rows()
    write_table(_table(rows[:30], CORE_COLUMNS), path, "trials")  # compacted so far
    write_part(_table(rows[30:], CORE_COLUMNS), path, "trials", seq=1)  # not compacted yet
    write_part(_table(_language_rows(rows), LANGUAGE_COLUMNS), path, "languages", seq=1)
    numbers = report_numbers(path)
    assert numbers["sweep"]["trials"] == len(rows) and numbers["sweep"]["finished"] == 80
    assert len(numbers["calibration"]["trials"]) == 80
    page = write_report(path, str(tmp_path / "page"))
    assert "82 trials recorded, 80 finished" in Path(page).read_text()


def test_a_bad_sweep_path_and_a_missing_sweep_are_refused(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nothing")]) != 0
    err = capsys.readouterr().err
    assert "nothing" in err
    assert not (tmp_path / "nothing").exists()  # no partial output


@pytest.mark.slow
def test_the_report_of_10000_trials_tables(tmp_path):
    from report_scale import generate

    path = str(tmp_path / "s10k")
    generate(path, 10_000)
    sweep = load_sweep(path)
    numbers = report_numbers(sweep)
    assert numbers["sweep"]["trials"] == 10_000
    assert len(numbers["tasks"]["effects"]) == 9 * 3
    assert numbers["tasks"]["importances"]  # the study of 10,000 trials, rebuilt
    assert len(numbers["reliability"]["bins"]) == 15 * 2 * 11
    assert_report_renders(path, tmp_path / "page", artifact="report-10k.png",
                          figures={"progress", "calibration", "effects", "importances",
                                   "languages", "reliability", "cost"})


def test_a_sweep_written_before_reliability_bins_still_reports(known, tmp_path):
    # schema 2: the same columns, no bin rows; its files read as they are
    import pyarrow.parquet as pq

    from search.results import SCHEMA_KEY, SCHEMA_VERSION, table_path

    assert SCHEMA_VERSION == 3
    for name in ("trials", "languages"):
        file = table_path(known, name)
        t = pq.read_table(file)
        pq.write_table(t.replace_schema_metadata({**t.schema.metadata, SCHEMA_KEY: b"2"}), file)
    numbers = report_numbers(known)
    assert numbers["reliability"]["bins"] == []
    assert numbers["reliability"]["missing"] == [
        f"the best trial {numbers['sweep']['best']['trial_id']} was scored without reliability "
        "bins (a sweep from before they were recorded)"]
    assert numbers["sweep"]["finished"] == 80
    page = Path(write_report(known, str(tmp_path / "page"))).read_text()
    assert "scored without reliability bins" in page


def test_open_hands_the_page_to_the_users_browser(known, tmp_path, monkeypatch, capsys):
    import webbrowser

    opened = []  # no desktop browser here: record what would be opened
    monkeypatch.setattr(webbrowser, "open", opened.append)
    assert main(["report", known, "--out", str(tmp_path / "page"), "--open"]) == 0
    page = tmp_path / "page" / "report.html"
    assert opened == [f"file://{page}"] and page.exists()
    assert capsys.readouterr().out.strip().endswith(str(page))
