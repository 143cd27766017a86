"""Task effects and importances on hand-written Parquet with a known answer; the sweep as an
Optuna study (the round trip through a real sweep is in test_surrogate_sweep and
test_sweep_ray)."""

import contextlib
import json
import random

import optuna
import pytest

from search.cli import main
from search.query import load_sweep
from search.report import (cost, export_optuna, language_view, progress, reliability, statuses,
                           task_effects)
from search.results import CORE_COLUMNS, LANGUAGE_COLUMNS, ResultsError, _table, write_table

TASKS = ["demo-polarity", "demo-topic", "demo-match"]  # drawn; demo-tags always in


def _rows(n=80, seed=0):
    """Finished trials whose accuracy is 0.5, + exactly 0.1 if demo-match is in, plus noise;
    demo-polarity costs 0.02 of ECE; demo-topic does nothing; demo-tags is in every trial (so
    the others are drawn independently); stopped and failed rows that must not count."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        tasks = ["demo-tags"] + [t for t in TASKS if rng.random() < 0.5]
        acc = 0.50 + (0.1 if "demo-match" in tasks else 0.0) + rng.gauss(0, 0.01)
        ece = 0.05 + (0.02 if "demo-polarity" in tasks else 0.0) + rng.gauss(0, 0.002)
        rows.append({"sweep": "t", "trial_id": f"t{i}", "config_hash": f"h{i}",
                     "status": "finished", "objective": acc - ece, "zs_accuracy": acc,
                     "zs_ece": ece, "finished_at": float(i),
                     "config/intermediate_tasks": tasks, "config/model_size": "tiny"})
    rows.append({**rows[0], "trial_id": "s", "config_hash": "hs", "status": "stopped",
                 "objective": 9.0, "config/intermediate_tasks": ["demo-match"]})
    rows.append({**rows[0], "trial_id": "e", "config_hash": "he", "status": "error",
                 "objective": None, "config/intermediate_tasks": ["demo-topic"],
                 "error": "Traceback (most recent call last):\n  File \"x.py\", line 1\n"
                          "torch.OutOfMemoryError: CUDA out of memory\n"})
    return rows


def _language_rows(trials):
    """de gains exactly 0.1 from demo-match, sw gains 0.05 from demo-polarity, nothing else."""
    rng = random.Random(1)
    rows = []
    for t in trials:
        tasks = t["config/intermediate_tasks"]
        for lang, task, gain in (("de", "demo-match", 0.1), ("sw", "demo-polarity", 0.05)):
            acc = 0.4 + (gain if task in tasks else 0.0) + rng.gauss(0, 0.01)
            rows.append({"trial_id": t["trial_id"], "task": "demo-sentiment", "language": lang,
                         "metric": "accuracy", "value": acc})
    return rows


@pytest.fixture
def known(tmp_path):
    path = str(tmp_path / "known")
    rows = _rows()
    write_table(_table(rows, CORE_COLUMNS), path, "trials")
    write_table(_table(_language_rows(rows), LANGUAGE_COLUMNS), path, "languages")
    return path


def test_task_effects_find_a_known_effect_with_an_interval_that_covers_it(known):
    effects = task_effects(known, n_boot=4000).set_index(["task", "metric"])
    match = effects.loc[("demo-match", "zs_accuracy")]
    assert match["effect"] == pytest.approx(0.1, abs=0.01)
    assert match["low"] <= 0.1 <= match["high"] and match["high"] - match["low"] < 0.02
    assert match["n_with"] + match["n_without"] == 80  # finished trials only
    topic = effects.loc[("demo-topic", "zs_accuracy")]
    assert topic["low"] <= 0.0 <= topic["high"]  # no effect: the interval covers 0
    assert not topic["low"] <= 0.1 <= topic["high"]
    ece = effects.loc[("demo-polarity", "zs_ece")]
    assert ece["low"] <= 0.02 <= ece["high"] and ece["low"] > 0  # costs calibration
    objective = effects.loc[("demo-polarity", "objective")]
    assert objective["effect"] == pytest.approx(-0.02, abs=0.01)


def test_per_language_effects_say_which_task_helps_which_language(known, capsys):
    effects = task_effects(known, per_language=True, metrics=["accuracy"])
    effects = effects.set_index(["task", "language", "metric"])
    for task, lang, gain in (("demo-match", "de", 0.1), ("demo-polarity", "sw", 0.05),
                             ("demo-match", "sw", 0.0), ("demo-polarity", "de", 0.0),
                             ("demo-topic", "de", 0.0)):
        row = effects.loc[(task, lang, "accuracy")]
        assert row["low"] <= gain <= row["high"], (task, lang, row.to_dict())
        if gain:  # (a zero gain can pick up the sample's correlation between drawn tasks)
            assert row["effect"] == pytest.approx(gain, abs=0.01)
    assert effects.loc[("demo-match", "sw", "accuracy")]["high"] < 0.05  # not the de gain
    with pytest.raises(ResultsError, match="no per-language metric 'ece'"):
        task_effects(known, per_language=True)  # the table has accuracy only
    assert main(["effects", known, "--languages", "--metric", "accuracy", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)["task_effects"]
    de = next(r for r in printed if (r["task"], r["language"]) == ("demo-match", "de"))
    assert de["effect"] == pytest.approx(effects.loc[("demo-match", "de", "accuracy")]["effect"])


def test_a_task_in_every_trial_has_no_effect_to_measure(known):
    tags = task_effects(known).set_index(["task", "metric"]).loc[("demo-tags", "objective")]
    assert tags["n_without"] == 0 and tags["effect"] != tags["effect"]  # NaN, not 0


def test_effects_command_prints_the_numbers_task_effects_computes(known, capsys):
    assert main(["effects", known, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    printed = {(r["task"], r["metric"]): r for r in out["task_effects"]}
    expected = task_effects(load_sweep(known)).to_dict("records")
    for r in expected:
        got = printed[r["task"], r["metric"]]
        for key in ("effect", "low", "high"):
            assert got[key] == pytest.approx(r[key], nan_ok=True)
    assert printed["demo-match", "zs_accuracy"]["effect"] == pytest.approx(0.1, abs=0.01)
    assert main(["effects", known]) == 0
    assert "demo-match" in capsys.readouterr().out


def test_bad_arguments_are_refused_with_what_was_expected(known, tmp_path, capsys):
    with pytest.raises(ValueError, match="level=1.5"):
        task_effects(known, level=1.5)
    with pytest.raises(ResultsError, match="'nope'"):
        task_effects(known, metrics=["nope"])
    # tables without a manifest: no space, so no study; the error says what to give
    url = f"sqlite:///{tmp_path / 'x.db'}"
    with pytest.raises(ResultsError, match="no sweep manifest"):
        export_optuna(known, url)
    assert not (tmp_path / "x.db").exists()  # nothing written
    assert main(["export-optuna", known, url]) == 2
    assert "no sweep manifest" in capsys.readouterr().err
    assert not (tmp_path / "x.db").exists()


def assert_exported_like_the_live_study(sweep_path: str, live: optuna.Study, tmp_path) -> None:
    """``xstilts export-optuna`` of a real sweep, then ``optuna.load_study``: the same trials
    as the study Optuna kept while the sweep ran (state, values, parameters, intermediate
    values), matched by parameters; a second export under the same name is refused."""
    url = f"sqlite:///{tmp_path / 'export.db'}"
    name = sweep_path.rstrip("/").rsplit("/", 1)[-1]
    assert main(["export-optuna", sweep_path, url]) == 0
    loaded = optuna.load_study(study_name=name, storage=url)
    assert loaded.directions == live.directions

    def key(t):
        return tuple(sorted((k, repr(v)) for k, v in t.params.items()))

    told = [t for t in live.trials if t.state != optuna.trial.TrialState.RUNNING]
    assert len(loaded.trials) == len(told) and told
    by_params = {key(t): t for t in loaded.trials}
    assert len(by_params) == len(loaded.trials)
    for t in told:
        got = by_params[key(t)]
        assert got.state == t.state
        assert got.distributions == t.distributions
        if t.values is None:
            assert got.values is None
        else:
            assert got.values == pytest.approx(t.values, abs=1e-12)
        assert got.intermediate_values == pytest.approx(t.intermediate_values, abs=1e-12), (
            got.user_attrs, got.state, got.intermediate_values, t.intermediate_values)
    assert main(["export-optuna", sweep_path, url]) == 2  # the study is there: left alone
    assert len(optuna.load_study(study_name=name, storage=url).trials) == len(told)
    assert main(["export-optuna", sweep_path, "foo://nowhere"]) == 2
    # the same rebuilt study feeds Optuna's importances, through `xstilts effects`
    out = tmp_path / "effects.json"
    with open(out, "w") as f, contextlib.redirect_stdout(f):
        assert main(["effects", sweep_path, "--json"]) == 0
    shares = json.loads(out.read_text())["importances"]
    params = {p for t in loaded.trials for p in t.params}
    assert shares and set(shares) <= params and sum(shares.values()) == pytest.approx(1.0)


def test_progress_statuses_cost_and_languages_add_up(known):
    p = progress(known)
    assert list(p["n"]) == list(range(1, 83)) and p["trial_seconds"].is_monotonic_increasing
    finished = p[p["status"] == "finished"]
    assert p["best"].iloc[-1] == pytest.approx(finished["objective"].max())
    assert (p["best"].dropna().diff().dropna() >= 0).all()  # best so far never falls
    assert p["best"].iloc[81] == p["best"].iloc[80]  # the stopped row's 9.0 is no best
    s = statuses(known)
    assert s["counts"] == {"finished": 80, "stopped": 1, "error": 1}
    assert s["errors"] == [{"cause": "torch.OutOfMemoryError: CUDA out of memory", "trials": 1,
                            "example": "e"}]
    c = cost(known).set_index("status")
    assert c.loc["finished", "trials"] == 80
    assert c["seconds"].sum() == pytest.approx(p["wall_seconds"].fillna(0).sum())
    view = language_view(known, k=5)
    assert list(view.index)[0] == "de"  # de's mean accuracy beats sw's among these trials
    top = sorted((r for r in _rows() if r["status"] == "finished"),
                 key=lambda r: (-r["objective"], r["config_hash"]))[:5]
    assert list(view.columns[:5]) == [r["trial_id"] for r in top]
    singles = {}  # then the best single-task trial of each task not among them
    for r in sorted((r for r in _rows() if r["status"] == "finished" and r not in top),
                    key=lambda r: (-r["objective"], r["config_hash"])):
        if len(r["config/intermediate_tasks"]) == 1:
            singles.setdefault(r["config/intermediate_tasks"][0], r["trial_id"])
    assert list(view.columns[5:]) == list(singles.values())


def test_reliability_reads_the_best_trials_bins_and_says_when_there_are_none(known, tmp_path):
    assert reliability(known).empty  # these tables were written without bins
    path = str(tmp_path / "bins")
    rows = _rows(4)
    best_id = max((r for r in rows if r["status"] == "finished"),
                  key=lambda r: r["objective"])["trial_id"]
    bins = [{"trial_id": tid, "task": "demo-sentiment", "language": "de",
             "metric": f"bin{b:02d}_{what}{ts}", "value": value}
            for tid in (best_id, "t0" if best_id != "t0" else "t1")
            for ts in ("", "_ts")
            for b, what, value in ((3, "count", 2.0), (3, "confidence", 0.25), (3, "accuracy", 0.5),
                                   (14, "count", 6.0), (14, "confidence", 0.9),
                                   (14, "accuracy", 1.0 if ts else 0.5))]
    write_table(_table(rows, CORE_COLUMNS), path, "trials")
    write_table(_table(bins + [{"trial_id": best_id, "task": "demo-sentiment", "language": "de",
                                "metric": "ece", "value": 0.3}], LANGUAGE_COLUMNS),
                path, "languages")
    r = reliability(path)
    assert list(r.columns) == ["language", "scaling", "bin", "count", "confidence", "accuracy"]
    assert r.columns.name is None
    assert len(r) == 4 and set(r["scaling"]) == {"raw", "ts"} and list(r["bin"][:2]) == [3, 14]
    raw = r[r["scaling"] == "raw"].set_index("bin")
    assert raw.loc[14, "count"] == 6 and raw.loc[14, "accuracy"] == 0.5
    assert r[r["scaling"] == "ts"].set_index("bin").loc[14, "accuracy"] == 1.0


def test_language_groups_average_each_group_and_its_gap_to_english(tmp_path):
    from search.report import language_groups

    # two finished demo trials (tiny, base) and a stopped one that must not count; the demo
    # suite's pseudo-languages: de high, fr medium, sw low resource (by anchor share)
    acc = {"t1": {"en": 0.9, "de": 0.8, "fr": 0.7, "sw": 0.5},
           "t2": {"en": 0.8, "de": 0.8, "fr": 0.6, "sw": 0.6},
           "s": {"en": 0.1, "de": 0.1, "fr": 0.1, "sw": 0.1}}
    ece = {tid: {lang: 1 - v for lang, v in by.items()} for tid, by in acc.items()}
    rows = [{"sweep": "g", "trial_id": tid, "config_hash": tid, "objective": 0.5,
             "status": "stopped" if tid == "s" else "finished", "finished_at": float(i),
             "config/target": "demo-sentiment", "config/intermediate_tasks": ["demo-topic"],
             "config/model_size": "base" if tid == "t2" else "tiny"}
            for i, tid in enumerate(acc)]
    langs = [{"trial_id": tid, "task": "demo-sentiment", "language": lang, "metric": m,
              "value": table[tid][lang]}
             for m, table in (("accuracy", acc), ("ece", ece)) for tid in acc
             for lang in acc[tid]]
    path = str(tmp_path / "groups")
    write_table(_table(rows, CORE_COLUMNS), path, "trials")
    write_table(_table(langs, LANGUAGE_COLUMNS), path, "languages")

    g = language_groups(path, "resource")
    assert list(g["resource"][g["model_size"] == "tiny"]) == ["(training language)", "high",
                                                             "medium", "low"]
    by = g.set_index(["model_size", "resource"])
    assert by.loc[("tiny", "low"), "accuracy"] == pytest.approx(0.5)
    assert by.loc[("tiny", "low"), "accuracy_gap"] == pytest.approx(0.5 - 0.9)
    assert by.loc[("base", "medium"), "ece_gap"] == pytest.approx(0.4 - 0.2)
    assert by.loc[("tiny", "(training language)"), "ece_gap"] == 0.0
    assert (g["trials"] == 1).all()  # the stopped trial is left out
    m = language_groups(path, "morphology").set_index(["model_size", "morphology"])
    # de and fr are fusional, sw agglutinative (spaces.languages)
    assert m.loc[("tiny", "fusional"), "languages"] == ["de", "fr"]
    assert m.loc[("tiny", "fusional"), "accuracy"] == pytest.approx(0.75)
    assert m.loc[("base", "agglutinative"), "accuracy_gap"] == pytest.approx(0.6 - 0.8)
    with pytest.raises(ResultsError, match="cannot group languages by 'colour'"):
        language_groups(path, "colour")
    # the report's languages section shows these groups (the demo has no language family)
    from search.page import report_numbers, write_report

    numbers = report_numbers(path)["languages"]
    assert numbers["groups"]["resource"] == json.loads(g.to_json(orient="records"))
    assert any("no grouping by family" in said for said in numbers["missing"])
    page = open(write_report(path, str(tmp_path / "page"))).read()
    assert "By resource" in page and "By morphology" in page and "-0.4000" in page


def test_arm_differences_pair_the_multi_task_arm_with_each_single_arm_by_seed(tmp_path):
    # a designed sweep (q-domain-shift's manifest) with hand-written results: the multi-task
    # arm is exactly 0.05 more accurate than demo-polarity at every seed and 0.02 worse
    # calibrated than demo-match; out of domain it gains 0.1 on demo-polarity
    from search.page import report_numbers, write_report
    from search.report import arm_differences, arm_trials
    from search.results import config_columns
    from search.sweep import SweepPlan, write_manifest
    from spaces.presets import load_preset

    preset = load_preset("q-domain-shift")
    plan = SweepPlan(storage=str(tmp_path), name="design", base=preset.trial_config(),
                     sweep=preset.sweep_config())
    write_manifest(plan)
    rng = random.Random(0)
    rows, langs = [], []
    for seed in (0, 1, 2):
        base_acc, base_ece = 0.6 + rng.gauss(0, 0.03), 0.2 + rng.gauss(0, 0.02)
        arms = {("demo-polarity",): (base_acc, base_ece + 0.01, 0.5),
                ("demo-match",): (base_acc + 0.02, base_ece - 0.02, 0.58),
                ("demo-polarity", "demo-match"): (base_acc + 0.05, base_ece, 0.6)}
        for arm, (acc, ece, ood) in arms.items():
            tid = f"{'+'.join(arm)}-{seed}"
            rows.append({"sweep": "design", "trial_id": tid, "config_hash": tid,
                         "status": "finished", "objective": acc - ece, "zs_accuracy": acc,
                         "zs_ece": ece, "zs_ece_ts": ece / 2, "finished_at": float(len(rows)),
                         **config_columns(plan.base.replace(intermediate_tasks=arm, seed=seed))})
            for lang in ("en", "de", "fr", "sw"):
                langs.append({"trial_id": tid, "task": "demo-sentiment-ood", "language": lang,
                              "metric": "accuracy", "value": ood if lang != "en" else 0.9})
    write_table(_table(rows, CORE_COLUMNS), plan.path, "trials")
    write_table(_table(langs, LANGUAGE_COLUMNS), plan.path, "languages")

    trials = arm_trials(plan.path)
    assert len(trials) == 9 and set(trials["arm"]) == {"demo-polarity", "demo-match",
                                                       "demo-polarity+demo-match"}
    assert list(trials["demo-sentiment-ood:accuracy"].drop_duplicates().sort_values()) == \
        [0.5, 0.58, 0.6]  # zero-shot means: English left out
    d = arm_differences(plan.path).set_index(["single_arm", "metric"])
    acc = d.loc[("demo-polarity", "zs_accuracy")]
    assert acc["n"] == 3 and acc["difference"] == pytest.approx(0.05)
    assert acc["low"] == pytest.approx(0.05) and acc["high"] == pytest.approx(0.05)
    assert d.loc[("demo-match", "zs_ece"), "difference"] == pytest.approx(0.02)
    assert d.loc[("demo-polarity", "demo-sentiment-ood:accuracy"), "difference"] == \
        pytest.approx(0.1)
    mean = d.loc[("single (mean)", "zs_accuracy"), "difference"]
    assert mean == pytest.approx(0.05 - 0.01)  # (0.05 + 0.03) / 2
    # the report's designed comparison shows these numbers
    numbers = report_numbers(plan.path)["arms"]
    assert numbers["missing"] == [] and len(numbers["differences"]) == len(d)
    page = open(write_report(plan.path, str(tmp_path / "page"))).read()
    assert "Multi-task minus single-task, paired by seed" in page and "+0.1000" in page
