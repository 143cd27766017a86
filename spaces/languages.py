"""Language metadata: family, script, morphology and pretraining-data class per language.

One frozen record per language code that a registered task uses (``spaces.tasks``),
so results can be grouped by typology and resource level. Pure data, standard
library only.

Sources:

- Family: Glottolog (Hammarström, Forkel, Haspelmath & Bank, glottolog.org), written
  ``"Family/Genus"`` at about WALS genus level (``"Indo-European/Germanic"``); a family
  without a useful subdivision here is written alone (``"Turkic"``, ``"Japonic"``).
- Morphology: WALS Online (Dryer & Haspelmath, eds., 2013, wals.info), feature 20A
  *Fusion of Selected Inflectional Formatives* (Bickel & Nichols) and feature 26A
  *Prefixing vs. Suffixing in Inflectional Morphology* (Dryer); values read from the
  CLDF release of WALS (cldf-datasets/wals v2020.4) and kept in ``WALS_VALUES``.
  Neither feature separates fusional from agglutinative, so the two are used as
  follows. ``morphology_source="WALS 20A/26A"``: WALS codes the language for both
  features and they agree on a side: isolating (20A has an isolating value and 26A is
  "Little affixation") or concatenative (20A "Exclusively concatenative" or
  "Ablaut/concatenative" and 26A a prefixing/suffixing value); among concatenative
  languages the fusional/agglutinative split follows the standard classification
  (WALS 21A/21B, exponence, was consulted but does not settle it either: it codes
  Finnish case as fused with number). ``"typology literature"``: WALS lacks
  one of the features, or the two features disagree (Mandarin, Indonesian, Tagalog),
  or WALS codes another variety (Arabic: 20A is for Egyptian Arabic); the class is
  the standard one of reference grammars and typology handbooks.
- Resource: XLM-R's pretraining data, CC-100 (Conneau et al. 2020, "Unsupervised
  Cross-lingual Representation Learning at Scale", ACL 2020, arXiv:1911.02116,
  Appendix A, Table 6: uncompressed GiB per language; read via the transcription in
  github.com/mayhewsw/multilingual-data-stats, cc-100/cc-100.csv). Classes: ``high`` at
  ``CC100_HIGH_GIB`` (10 GiB) or more, ``medium`` from ``CC100_LOW_GIB`` (1 GiB) up to
  10, ``low`` under 1 GiB or absent from CC-100 (``cc100_gib=None``). ``cc100_note``
  says where a figure is a judgement (``"approximate"``) or which row of the table
  was used.

The demo suite (``trainables.demo_suite``) reuses the codes en, de, fr and sw for
synthetic pseudo-languages; ``DEMO_LANGUAGES`` describes those (``language_info(code,
demo=True)``), ``LANGUAGES`` the real languages.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal, overload

from spaces.errors import UnknownNameError

Morphology = Literal["isolating", "fusional", "agglutinative", "polysynthetic"]
MorphologySource = Literal["WALS 20A/26A", "typology literature"]
Resource = Literal["high", "medium", "low"]

MORPHOLOGIES: tuple[str, ...] = ("isolating", "fusional", "agglutinative", "polysynthetic")
MORPHOLOGY_SOURCES: tuple[str, ...] = ("WALS 20A/26A", "typology literature")
RESOURCES: tuple[str, ...] = ("high", "medium", "low")
#: the fields ``group_languages`` groups real languages by
GROUP_KEYS: tuple[str, ...] = ("family", "script", "morphology", "resource")
#: the fields ``group_languages(..., demo=True)`` groups demo pseudo-languages by
DEMO_GROUP_KEYS: tuple[str, ...] = ("script", "morphology", "resource")

#: CC-100 size (GiB, Conneau et al. 2020, Table 6) from which a language is ``high``
CC100_HIGH_GIB = 10.0
#: CC-100 size (GiB) from which a language is ``medium``; below it (or absent): ``low``
CC100_LOW_GIB = 1.0

#: demo anchor share from which a pseudo-language is ``high`` resource
DEMO_HIGH_ANCHOR = 0.8
#: demo anchor share from which a pseudo-language is ``medium``; below it: ``low``
DEMO_LOW_ANCHOR = 0.5


def resource_class(cc100_gib: float | None) -> str:
    """``high``/``medium``/``low`` for a CC-100 size in GiB; ``None`` (not in CC-100): low."""
    if cc100_gib is None or cc100_gib < CC100_LOW_GIB:
        return "low"
    return "high" if cc100_gib >= CC100_HIGH_GIB else "medium"


def demo_resource_class(anchor_share: float) -> str:
    """``high``/``medium``/``low`` for a demo pseudo-language's share of English forms."""
    if anchor_share >= DEMO_HIGH_ANCHOR:
        return "high"
    return "medium" if anchor_share >= DEMO_LOW_ANCHOR else "low"


class UnknownLanguageError(UnknownNameError):
    """A language code without metadata; the message names the code and the known ones."""


@dataclass(frozen=True)
class Language:
    """One real language: what it is, how it inflects, how much XLM-R saw of it."""

    code: str
    #: English name
    name: str
    #: ``"Family/Genus"`` after Glottolog (``"Indo-European/Germanic"``), or the family
    family: str
    #: writing system, ISO 15924-like name (``"Latin"``, ``"Japanese (Han+Kana)"``)
    script: str
    #: one of ``MORPHOLOGIES``
    morphology: str
    #: one of ``MORPHOLOGY_SOURCES``: whether WALS 20A/26A back the class (module docstring)
    morphology_source: str
    #: one of ``RESOURCES``, from ``cc100_gib`` by ``resource_class``
    resource: str
    #: CC-100 size in GiB (Conneau et al. 2020, Table 6); None: not in CC-100
    cc100_gib: float | None
    #: "" for a figure read straight off Table 6; else which row, or "approximate: ..."
    cc100_note: str = ""

    def __post_init__(self) -> None:
        problems = []
        if self.morphology not in MORPHOLOGIES:
            problems.append(f"morphology={self.morphology!r}; use one of {MORPHOLOGIES}")
        if self.morphology_source not in MORPHOLOGY_SOURCES:
            problems.append(f"morphology_source={self.morphology_source!r}; "
                            f"use one of {MORPHOLOGY_SOURCES}")
        if self.resource != resource_class(self.cc100_gib):
            problems.append(f"resource={self.resource!r} but cc100_gib={self.cc100_gib} "
                            f"makes it {resource_class(self.cc100_gib)!r}")
        if problems:
            raise ValueError(f"language {self.code!r}: " + "; ".join(problems))


@dataclass(frozen=True)
class DemoLanguage:
    """One pseudo-language of the demo suite, as ``trainables.demo_suite`` builds it."""

    code: str
    name: str
    #: share of concepts written with the English form (``demo_suite.ANCHOR_SHARE``)
    anchor_share: float
    #: whether the suite reverses the word order of its sentences (sw)
    reversed_word_order: bool
    #: ``demo_resource_class(anchor_share)``: the share plays the part of shared pretraining
    resource: str
    #: the real language's class (the suite does not model inflection; kept for grouping)
    morphology: str
    #: pseudo-words are built from Latin-letter syllables
    script: str = "Latin"


_WALS: MorphologySource = "WALS 20A/26A"
_LIT: MorphologySource = "typology literature"

_GERMANIC = "Indo-European/Germanic"
_ROMANCE = "Indo-European/Romance"
_SLAVIC = "Indo-European/Slavic"
_INDO_ARYAN = "Indo-European/Indo-Aryan"
_SEMITIC = "Afro-Asiatic/Semitic"
_MALAYIC = "Austronesian/Malayo-Sumbawan"

#: (code, name, family, script, morphology, morphology source, CC-100 GiB, CC-100 note);
#: ``resource`` follows from the GiB by ``resource_class``
_ROWS: tuple[tuple[str, str, str, str, str, MorphologySource, float | None, str], ...] = (
    ("af", "Afrikaans", _GERMANIC, "Latin", "fusional", _LIT, 1.3, ""),
    ("ar", "Arabic", _SEMITIC, "Arabic", "fusional", _LIT, 28.0, ""),
    ("bg", "Bulgarian", _SLAVIC, "Cyrillic", "fusional", _LIT, 57.5, ""),
    ("bn", "Bengali", _INDO_ARYAN, "Bengali", "fusional", _LIT, 8.4,
     "Bengali-script row; Bengali Romanized (0.5 GiB) is a separate row"),
    ("de", "German", _GERMANIC, "Latin", "fusional", _WALS, 66.6, ""),
    ("el", "Greek", "Indo-European/Greek", "Greek", "fusional", _WALS, 46.9, ""),
    ("en", "English", _GERMANIC, "Latin", "fusional", _WALS, 300.8, ""),
    ("es", "Spanish", _ROMANCE, "Latin", "fusional", _WALS, 53.3, ""),
    ("et", "Estonian", "Uralic/Finnic", "Latin", "agglutinative", _LIT, 6.1, ""),
    ("eu", "Basque", "Basque (isolate)", "Latin", "agglutinative", _WALS, 2.0, ""),
    ("fa", "Persian", "Indo-European/Iranian", "Arabic", "agglutinative", _WALS, 111.6, ""),
    ("fi", "Finnish", "Uralic/Finnic", "Latin", "agglutinative", _WALS, 54.3, ""),
    ("fr", "French", _ROMANCE, "Latin", "fusional", _WALS, 56.8, ""),
    ("he", "Hebrew", _SEMITIC, "Hebrew", "fusional", _WALS, 31.6, ""),
    ("hi", "Hindi", _INDO_ARYAN, "Devanagari", "fusional", _WALS, 20.2,
     "Devanagari row; Hindi Romanized (0.5 GiB) is a separate row"),
    ("hu", "Hungarian", "Uralic/Ugric", "Latin", "agglutinative", _WALS, 58.4, ""),
    ("id", "Indonesian", _MALAYIC, "Latin", "agglutinative", _LIT, 148.3, ""),
    ("it", "Italian", _ROMANCE, "Latin", "fusional", _LIT, 30.2, ""),
    ("ja", "Japanese", "Japonic", "Japanese (Han+Kana)", "agglutinative", _WALS, 69.3, ""),
    ("jv", "Javanese", "Austronesian/Javanese", "Latin", "agglutinative", _LIT, 0.2, ""),
    ("ka", "Georgian", "Kartvelian", "Georgian", "agglutinative", _WALS, 9.1, ""),
    ("kk", "Kazakh", "Turkic", "Cyrillic", "agglutinative", _LIT, 6.4, ""),
    ("ko", "Korean", "Koreanic", "Hangul", "agglutinative", _WALS, 54.2, ""),
    ("ml", "Malayalam", "Dravidian", "Malayalam", "agglutinative", _LIT, 7.6, ""),
    ("mr", "Marathi", _INDO_ARYAN, "Devanagari", "fusional", _LIT, 2.8, ""),
    ("ms", "Malay", _MALAYIC, "Latin", "agglutinative", _LIT, 8.5, ""),
    ("my", "Burmese", "Sino-Tibetan/Burmese-Lolo", "Myanmar", "agglutinative", _WALS, 0.4,
     ("approximate: Table 6 has two Burmese rows, 15M tokens/0.4 GiB and 56M/1.6 GiB, one "
      "of them the Zawgyi encoding; 0.4 GiB taken as Unicode Burmese (in the statmt "
      "recreation of CC-100 the Zawgyi file is about 4x the Unicode one)")),
    ("nl", "Dutch", _GERMANIC, "Latin", "fusional", _LIT, 29.3, ""),
    ("pt", "Portuguese", _ROMANCE, "Latin", "fusional", _LIT, 49.1, ""),
    ("ru", "Russian", _SLAVIC, "Cyrillic", "fusional", _WALS, 278.0, ""),
    ("sw", "Swahili", "Niger-Congo/Bantu", "Latin", "agglutinative", _WALS, 1.6, ""),
    ("ta", "Tamil", "Dravidian", "Tamil", "agglutinative", _LIT, 12.2,
     "Tamil-script row; Tamil Romanized (0.3 GiB) is a separate row"),
    ("te", "Telugu", "Dravidian", "Telugu", "agglutinative", _LIT, 4.7,
     "Telugu-script row; Telugu Romanized (0.3 GiB) is a separate row"),
    ("th", "Thai", "Kra-Dai/Tai", "Thai", "isolating", _WALS, 71.7, ""),
    ("tl", "Tagalog", "Austronesian/Greater Central Philippine", "Latin", "agglutinative",
     _LIT, 3.1, "listed as Filipino in Table 6"),
    ("tr", "Turkish", "Turkic", "Latin", "agglutinative", _WALS, 20.9, ""),
    ("ur", "Urdu", _INDO_ARYAN, "Arabic", "fusional", _LIT, 5.7,
     "Arabic-script row; Urdu Romanized (0.5 GiB) is a separate row"),
    ("vi", "Vietnamese", "Austroasiatic/Vietic", "Latin", "isolating", _WALS, 137.3, ""),
    ("yo", "Yoruba", "Niger-Congo/Defoid", "Latin", "isolating", _WALS, None,
     "not in CC-100 (XLM-R's 100 languages leave Yoruba out): low by absence"),
    ("zh", "Chinese", "Sino-Tibetan/Sinitic", "Han", "isolating", _LIT, 46.9,
     "Chinese (Simplified) row; Chinese (Traditional), 16.6 GiB, is a separate row"),
)

#: language code -> its metadata, for every language of every registered task
LANGUAGES: Mapping[str, Language] = MappingProxyType({
    code: Language(code, name, family, script, morphology, source, resource_class(gib), gib,
                   note)
    for code, name, family, script, morphology, source, gib, note in _ROWS
})

#: WALS 2013 values (CLDF v2020.4) for the languages WALS codes for both features:
#: code -> (WALS language id, 20A value, 26A value). Arabic is left out: WALS's 20A
#: datapoint is Egyptian Arabic, its Modern Standard Arabic has 26A only
#: ("Strongly suffixing"). Features 20A and 26A disagree on a side for zh, id and tl.
WALS_VALUES: Mapping[str, tuple[str, str, str]] = MappingProxyType({
    "de": ("ger", "Exclusively concatenative", "Strongly suffixing"),
    "el": ("grk", "Exclusively concatenative", "Strongly suffixing"),
    "en": ("eng", "Exclusively concatenative", "Strongly suffixing"),
    "es": ("spa", "Exclusively concatenative", "Strongly suffixing"),
    "eu": ("bsq", "Exclusively concatenative", "Equal prefixing and suffixing"),
    "fa": ("prs", "Exclusively concatenative", "Weakly suffixing"),
    "fi": ("fin", "Exclusively concatenative", "Strongly suffixing"),
    "fr": ("fre", "Exclusively concatenative", "Strongly suffixing"),
    "he": ("heb", "Ablaut/concatenative", "Weakly suffixing"),
    "hi": ("hin", "Exclusively concatenative", "Strongly suffixing"),
    "hu": ("hun", "Exclusively concatenative", "Strongly suffixing"),
    "id": ("ind", "Exclusively isolating", "Strongly suffixing"),
    "ja": ("jpn", "Exclusively concatenative", "Strongly suffixing"),
    "ka": ("geo", "Exclusively concatenative", "Weakly suffixing"),
    "ko": ("kor", "Exclusively concatenative", "Strongly suffixing"),
    "my": ("brm", "Exclusively concatenative", "Strongly suffixing"),
    "ru": ("rus", "Exclusively concatenative", "Strongly suffixing"),
    "sw": ("swa", "Exclusively concatenative", "Weakly prefixing"),
    "th": ("tha", "Isolating/concatenative", "Little affixation"),
    "tl": ("tag", "Exclusively concatenative", "Little affixation"),
    "tr": ("tur", "Exclusively concatenative", "Strongly suffixing"),
    "vi": ("vie", "Exclusively isolating", "Little affixation"),
    "yo": ("yor", "Tonal/isolating", "Little affixation"),
    "zh": ("mnd", "Isolating/concatenative", "Strongly suffixing"),
})

#: the 20A values with an isolating component, and the 20A values of concatenative languages
_ISOLATING_20A = ("Exclusively isolating", "Tonal/isolating", "Isolating/concatenative")
_CONCATENATIVE_20A = ("Exclusively concatenative", "Ablaut/concatenative")


def wals_side(code: str) -> str | None:
    """``"isolating"``/``"concatenative"`` where WALS 20A and 26A agree on it, else None.

    None also for a language ``WALS_VALUES`` lacks. A ``"WALS 20A/26A"`` entry of
    ``LANGUAGES`` is isolating exactly when this says ``"isolating"``.
    """
    if code not in WALS_VALUES:
        return None
    _, fusion, affixes = WALS_VALUES[code]
    if fusion in _ISOLATING_20A and affixes == "Little affixation":
        return "isolating"
    if fusion in _CONCATENATIVE_20A and affixes != "Little affixation":
        return "concatenative"
    return None


#: demo suite share of English forms per language (``trainables.demo_suite.ANCHOR_SHARE``;
#: repeated here because ``spaces`` does not import ``trainables``)
DEMO_ANCHOR_SHARE: Mapping[str, float] = MappingProxyType(
    {"en": 1.0, "de": 0.8, "fr": 0.6, "sw": 0.35})

#: demo code -> how the suite builds that pseudo-language
DEMO_LANGUAGES: Mapping[str, DemoLanguage] = MappingProxyType({
    code: DemoLanguage(
        code=code,
        name=("English (demo anchor)" if code == "en"
              else f"pseudo-{LANGUAGES[code].name} (demo)"),
        anchor_share=share,
        reversed_word_order=code == "sw",
        resource=demo_resource_class(share),
        morphology=LANGUAGES[code].morphology,
    )
    for code, share in DEMO_ANCHOR_SHARE.items()
})


@overload
def language_info(code: str, *, demo: Literal[False] = ...) -> Language: ...


@overload
def language_info(code: str, *, demo: Literal[True]) -> DemoLanguage: ...


@overload
def language_info(code: str, *, demo: bool) -> Language | DemoLanguage: ...


def language_info(code: str, *, demo: bool = False) -> Language | DemoLanguage:
    """The metadata of ``code``: the real language, or with ``demo`` the demo pseudo-language.

    Unknown codes raise ``UnknownLanguageError`` (a ``KeyError``) naming the known ones.
    """
    table: Mapping[str, Language | DemoLanguage] = DEMO_LANGUAGES if demo else LANGUAGES
    try:
        return table[code]
    except KeyError:
        what = "demo language" if demo else "language"
        raise UnknownLanguageError(
            f"no metadata for {what} code {code!r}; known codes: {', '.join(sorted(table))}"
        ) from None


def group_languages(codes: Iterable[str], by: str, *, demo: bool = False) -> dict[str, list[str]]:
    """``{value of field by: [codes with it]}``, groups and codes in order of first appearance.

    ``by`` is one of ``GROUP_KEYS`` (``DEMO_GROUP_KEYS`` with ``demo``); any other value,
    or an unknown code, is refused with a message naming what is allowed.
    """
    allowed = DEMO_GROUP_KEYS if demo else GROUP_KEYS
    if by not in allowed:
        raise ValueError(f"cannot group languages by {by!r}; group by one of: "
                         f"{', '.join(allowed)}")
    groups: dict[str, list[str]] = {}
    for code in codes:
        groups.setdefault(getattr(language_info(code, demo=demo), by), []).append(code)
    return groups
