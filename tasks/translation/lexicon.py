"""The bilingual lexicon of the embedded corpus, read from the package's TSV files.

Nouns carry gender, plural and (for weak nouns) their oblique singular; verbs carry the
forms German needs for present, perfect, separable prefixes and the cases their objects
take; ``kinds`` letters (see nouns.tsv) keep generated sentences meaningful.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources

_MISSING = "-"


@dataclass(frozen=True)
class Noun:
    en: str
    en_plural: str | None
    de: str
    de_plural: str | None
    gender: str  # m | f | n
    kinds: str
    de_oblique: str | None  # accusative/dative singular of weak nouns (den Jungen)


@dataclass(frozen=True)
class Adjective:
    en: str
    de: str  # predicative: der Hund ist teuer
    de_stem: str  # before endings: ein teures Auto
    kinds: str


@dataclass(frozen=True)
class Verb:
    en: str
    en_3sg: str
    en_past: str
    en_particle: str | None
    de_prefix: str | None  # separable prefix: an|rufen
    de_root: str  # infinitive without the prefix
    de_present: tuple[str, str, str]  # ich, du, er forms without the prefix
    de_participle: str
    de_auxiliary: str  # haben | sein
    frame: str  # acc | dat | dat_acc | intr | that | PREPOSITION:CASE
    subject_kinds: str
    object_kinds: str  # dat_acc: "DATIVE/ACCUSATIVE"
    adverbials: tuple[str, ...]  # loc | dest | with
    adverbial_required: bool

    @property
    def de_infinitive(self) -> str:
        return (self.de_prefix or "") + self.de_root


@dataclass(frozen=True)
class TimeAdverb:
    en: str
    de: str
    tenses: tuple[str, ...]


@dataclass(frozen=True)
class Lexicon:
    nouns: tuple[Noun, ...]
    adjectives: tuple[Adjective, ...]
    verbs: tuple[Verb, ...]
    adverbs: tuple[TimeAdverb, ...]
    names: tuple[str, ...]


def _rows(name: str, width: int) -> list[list[str]]:
    text = resources.files(__package__).joinpath(name).read_text(encoding="utf-8")
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        cells = line.split("\t")
        if len(cells) != width:
            raise ValueError(f"{name} line {number}: expected {width} columns, got {len(cells)}")
        rows.append(cells)
    return rows


def _optional(cell: str) -> str | None:
    return None if cell == _MISSING else cell


def _verb(cells: list[str]) -> Verb:
    (en, en_3sg, en_past, particle, prefix, root, ich, du, er, participle, auxiliary) = cells[:11]
    frame, subject_kinds, object_kinds, adverbials = cells[11:]
    return Verb(
        en,
        en_3sg,
        en_past,
        _optional(particle),
        _optional(prefix),
        root,
        (ich, du, er),
        participle,
        auxiliary,
        frame,
        subject_kinds,
        object_kinds,
        tuple(a for a in adverbials.rstrip("!").split(",") if a != _MISSING),
        adverbials.endswith("!"),
    )


@cache
def load_lexicon() -> Lexicon:
    """The lexicon shipped with the package (read once per process)."""
    return Lexicon(
        nouns=tuple(
            Noun(en, _optional(en_pl), de, _optional(de_pl), gender, kinds, _optional(weak))
            for en, en_pl, de, de_pl, gender, kinds, weak in _rows("nouns.tsv", 7)
        ),
        adjectives=tuple(Adjective(*cells) for cells in _rows("adjectives.tsv", 4)),
        verbs=tuple(_verb(cells) for cells in _rows("verbs.tsv", 15)),
        adverbs=tuple(
            TimeAdverb(en, de, tuple(tenses.split(",")))
            for en, de, tenses in _rows("adverbs.tsv", 3)
        ),
        names=tuple(name for (name,) in _rows("names.txt", 1)),
    )
