"""Language metadata (spaces.languages): coverage of the registry, allowed values, facts."""

import subprocess
import sys
from pathlib import Path

import pytest

from spaces.languages import (
    CC100_HIGH_GIB,
    CC100_LOW_GIB,
    DEMO_GROUP_KEYS,
    DEMO_LANGUAGES,
    GROUP_KEYS,
    LANGUAGES,
    MORPHOLOGIES,
    MORPHOLOGY_SOURCES,
    RESOURCES,
    WALS_VALUES,
    DemoLanguage,
    Language,
    UnknownLanguageError,
    group_languages,
    language_info,
    resource_class,
    wals_side,
)
from spaces.tasks import get_task, task_names


def _registry_languages() -> set[str]:
    return {lang for name in task_names() for lang in get_task(name).languages}


def test_every_language_of_every_registered_task_has_metadata():
    assert set(task_names()) == set(task_names("intermediate")) | set(task_names("target"))
    missing = {name: [lang for lang in get_task(name).languages if lang not in LANGUAGES]
               for name in task_names()}
    assert not {name: langs for name, langs in missing.items() if langs}
    # and nothing beyond them: every entry is some task's language
    assert set(LANGUAGES) == _registry_languages()


@pytest.mark.parametrize("code", sorted(LANGUAGES))
def test_each_field_takes_an_allowed_value(code):
    lang = language_info(code)
    assert isinstance(lang, Language) and lang.code == code
    assert lang.name and lang.name[0].isupper()
    assert lang.family and lang.script
    assert lang.morphology in MORPHOLOGIES
    assert lang.morphology_source in MORPHOLOGY_SOURCES
    assert lang.resource in RESOURCES
    assert lang.resource == resource_class(lang.cc100_gib)
    assert lang.cc100_gib is None or lang.cc100_gib > 0
    if lang.cc100_gib is None:
        assert "not in CC-100" in lang.cc100_note
    # a WALS-backed class needs WALS values that agree on the isolating/concatenative side
    if lang.morphology_source == "WALS 20A/26A":
        side = wals_side(code)
        assert side is not None, f"{code}: WALS 20A/26A do not back a side"
        assert (lang.morphology == "isolating") == (side == "isolating")


def test_resource_thresholds():
    assert (CC100_LOW_GIB, CC100_HIGH_GIB) == (1.0, 10.0)
    assert resource_class(None) == "low"
    assert resource_class(0.99) == "low"
    assert resource_class(1.0) == resource_class(9.99) == "medium"
    assert resource_class(10.0) == "high"


def test_hand_checked_facts():
    sw = language_info("sw")
    assert (sw.family, sw.morphology, sw.script) == ("Niger-Congo/Bantu", "agglutinative", "Latin")
    # 1.6 GiB in CC-100 (Table 6): medium by the 1-10 GiB band, although XLM-R's paper
    # calls Swahili low-resource; the demo's pseudo-Swahili is the low one
    assert (sw.cc100_gib, sw.resource) == (1.6, "medium")
    assert language_info("sw", demo=True).resource == "low"
    zh = language_info("zh")
    assert (zh.morphology, zh.script) == ("isolating", "Han")
    assert language_info("en").resource == "high"
    tr = language_info("tr")
    assert (tr.morphology, tr.family) == ("agglutinative", "Turkic")
    ar = language_info("ar")
    assert ar.script == "Arabic" and ar.family.startswith("Afro-Asiatic")
    assert language_info("ja").script == "Japanese (Han+Kana)"
    assert language_info("ko").script == "Hangul"
    assert language_info("fi").morphology == language_info("hu").morphology == "agglutinative"
    assert language_info("vi").morphology == "isolating"
    assert language_info("de").morphology == language_info("ru").morphology == "fusional"
    assert language_info("eu").family == "Basque (isolate)"
    assert language_info("yo").cc100_gib is None and language_info("yo").resource == "low"
    assert language_info("my").cc100_note.startswith("approximate")
    assert WALS_VALUES["sw"] == ("swa", "Exclusively concatenative", "Weakly prefixing")


def test_group_xnli_languages_by_morphology():
    xnli = get_task("xnli").languages
    groups = group_languages(xnli, "morphology")
    assert sorted(c for codes in groups.values() for c in codes) == sorted(xnli)
    assert groups["isolating"] == ["th", "vi", "zh"]
    assert groups["agglutinative"] == ["sw", "tr"]
    assert "en" in groups["fusional"] and "ar" in groups["fusional"]
    for by in GROUP_KEYS:
        assert sum(len(v) for v in group_languages(xnli, by).values()) == len(xnli)


def test_group_refuses_unknown_keys_naming_the_allowed_ones():
    with pytest.raises(ValueError, match="colour") as info:
        group_languages(["en", "de"], "colour")
    assert all(key in str(info.value) for key in GROUP_KEYS)
    with pytest.raises(ValueError, match="family"):
        group_languages(["en"], "family", demo=True)


def test_unknown_code_names_the_code_and_the_known_ones():
    with pytest.raises(UnknownLanguageError) as info:
        language_info("xx")
    assert isinstance(info.value, KeyError)
    assert "'xx'" in str(info.value) and "sw" in str(info.value) and "zh" in str(info.value)
    with pytest.raises(KeyError, match="demo language code 'ar'"):
        language_info("ar", demo=True)
    with pytest.raises(KeyError, match="'xx'"):
        group_languages(["en", "xx"], "script")


def test_demo_languages_follow_the_suite():
    from trainables import demo_suite

    assert set(DEMO_LANGUAGES) == set(demo_suite.LANGUAGES) == set(get_task(
        "demo-sentiment").languages)
    for code, demo in DEMO_LANGUAGES.items():
        assert isinstance(demo, DemoLanguage)
        assert demo.anchor_share == demo_suite.ANCHOR_SHARE[code]
        assert demo.morphology == LANGUAGES[code].morphology
        assert demo.reversed_word_order == (code == "sw")
    assert {c: d.resource for c, d in DEMO_LANGUAGES.items()} == {
        "en": "high", "de": "high", "fr": "medium", "sw": "low"}
    assert group_languages(["en", "de", "fr", "sw"], "resource", demo=True) == {
        "high": ["en", "de"], "medium": ["fr"], "low": ["sw"]}
    assert set(DEMO_GROUP_KEYS) <= set(GROUP_KEYS)


def test_import_pulls_in_neither_torch_nor_ray():
    code = ("import spaces.languages, sys; "
            "assert 'torch' not in sys.modules and 'ray' not in sys.modules, "
            "sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'ray'))")
    result = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True,
                            text=True, timeout=60, cwd=Path(__file__).resolve().parents[2])
    assert result.returncode == 0, result.stderr
