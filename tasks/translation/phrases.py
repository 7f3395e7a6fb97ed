"""Noun phrases and verb forms in English and German.

German inflects what English leaves bare: the article and the adjective ending depend on
gender, case and number (der große Hund / den großen Hund / einem großen Hund), weak nouns
take -n outside the nominative, dative plurals take -n, and prepositions merge with the
article (in dem → im). These tables are the textbook paradigms.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

from num2words import num2words

from xbench_tasks.translation.lexicon import Adjective, Noun

# Persons: (English pronoun, German pronoun, person index 0-3 for German verb tables,
# English agreement: "1sg" | "2sg" | "3sg" | "pl").
PRONOUNS = {
    "I": ("ich", 0, "1sg"),
    "you": ("du", 1, "2sg"),
    "he": ("er", 2, "3sg"),
    "she": ("sie", 2, "3sg"),
    "we": ("wir", 3, "pl"),
    "they": ("sie", 3, "pl"),
}

DEFINITE = {
    "nom": {"m": "der", "f": "die", "n": "das", "pl": "die"},
    "acc": {"m": "den", "f": "die", "n": "das", "pl": "die"},
    "dat": {"m": "dem", "f": "der", "n": "dem", "pl": "den"},
}
# Endings of ein-words (ein, kein, mein ...) and der-words (dieser ...).
EIN_ENDINGS = {
    "nom": {"m": "", "f": "e", "n": "", "pl": "e"},
    "acc": {"m": "en", "f": "e", "n": "", "pl": "e"},
    "dat": {"m": "em", "f": "er", "n": "em", "pl": "en"},
}
DER_ENDINGS = {
    "nom": {"m": "er", "f": "e", "n": "es", "pl": "e"},
    "acc": {"m": "en", "f": "e", "n": "es", "pl": "e"},
    "dat": {"m": "em", "f": "er", "n": "em", "pl": "en"},
}
# Adjective endings: weak after der-words, mixed after ein-words, strong with no article.
WEAK = {
    "nom": {"m": "e", "f": "e", "n": "e", "pl": "en"},
    "acc": {"m": "en", "f": "e", "n": "e", "pl": "en"},
    "dat": {"m": "en", "f": "en", "n": "en", "pl": "en"},
}
MIXED = {
    "nom": {"m": "er", "f": "e", "n": "es", "pl": "en"},
    "acc": {"m": "en", "f": "e", "n": "es", "pl": "en"},
    "dat": {"m": "en", "f": "en", "n": "en", "pl": "en"},
}
STRONG_PLURAL = {"nom": "e", "acc": "e", "dat": "en"}

POSSESSIVES = {"my": "mein", "your": "dein", "his": "sein", "her": "ihr", "our": "unser"}
CONTRACTIONS = {
    ("in", "dem"): "im",
    ("an", "dem"): "am",
    ("zu", "dem"): "zum",
    ("zu", "der"): "zur",
    ("von", "dem"): "vom",
}

# Present forms for ich, du, er/sie, wir/sie of the verbs grammar itself uses.
AUXILIARIES = {
    "haben": ("habe", "hast", "hat", "haben"),
    "sein": ("bin", "bist", "ist", "sind"),
    "war": ("war", "warst", "war", "waren"),
    "werden": ("werde", "wirst", "wird", "werden"),
    "can": ("kann", "kannst", "kann", "können"),
    "must": ("muss", "musst", "muss", "müssen"),
    "want": ("will", "willst", "will", "wollen"),
}


@cache
def number_words(value: int, lang: str) -> str:
    """A cardinal as words: twenty-one / einundzwanzig."""
    return num2words(value, lang=lang)


#: A word alignment: ``(target start, end, source start, end)`` character spans of each
#: pair of aligned words (German first for the embedded English → German pairs).
Links = list[tuple[int, int, int, int]]


@dataclass(frozen=True)
class Word:
    """One rendered word and what it expresses: a word aligns with every word of the other
    language that shares a tag (``subj.noun``, ``a.verb``: role and part, set by the
    grammar). ``glued``: no space before it (punctuation)."""

    text: str
    tags: frozenset[str]
    glued: bool = False


def words(text: str, *tags: str) -> list[Word]:
    """``text`` split at spaces, every word with ``tags`` (multi-word forms: is going to)."""
    return [Word(part, frozenset(tags)) for part in text.split()]


def render(sentence: Sequence[Word]) -> tuple[str, list[tuple[int, int]]]:
    """The words as text, and each word's [start, end) character span in it."""
    text, spans = "", []
    for word in sentence:
        if text and not word.glued:
            text += " "
        spans.append((len(text), len(text) + len(word.text)))
        text += word.text
    return text, spans


def word_links(source: Sequence[Word], target: Sequence[Word]) -> list[tuple[int, int, int, int]]:
    """``(target start, end, source start, end)`` character spans of every pair of words
    that share a tag, in the texts :func:`render` gives (target word first)."""
    _, source_spans = render(source)
    _, target_spans = render(target)
    return [
        (*target_span, *source_span)
        for t, target_span in zip(target, target_spans, strict=True)
        for s, source_span in zip(source, source_spans, strict=True)
        if t.tags & s.tags
    ]


@dataclass(frozen=True)
class NounPhrase:
    """A pronoun, a name, or determiner + optional adjective + noun.

    ``determiner`` is one of the, a, my, your, his, her, our, this, bare (plural without
    article) or number (plural with ``count``).
    """

    pronoun: str | None = None
    name: str | None = None
    noun: Noun | None = None
    determiner: str = "the"
    plural: bool = False
    adjective: Adjective | None = None
    count: int = 0

    @property
    def person(self) -> int:
        """Row of the German verb tables: 0 ich, 1 du, 2 er/sie/es, 3 wir/sie."""
        if self.pronoun:
            return PRONOUNS[self.pronoun][1]
        return 3 if self.plural else 2

    @property
    def agreement(self) -> str:
        """English agreement: 1sg, 2sg, 3sg or pl."""
        if self.pronoun:
            return PRONOUNS[self.pronoun][2]
        return "pl" if self.plural else "3sg"

    @property
    def indefinite(self) -> bool:
        """German negates it with kein rather than nicht."""
        return self.determiner in ("a", "bare")

    def english(self) -> str:
        return render(self.english_words())[0]

    def english_words(self, role: str = "np") -> list[Word]:
        """The English phrase, tagged ``<role>.det`` / ``.adj`` / ``.noun`` (``.head`` for a
        pronoun or name)."""
        if self.pronoun or self.name:
            return words(self.pronoun or self.name, f"{role}.head")
        noun = self.noun.en_plural if self.plural else self.noun.en
        tail = words(self.adjective.en, f"{role}.adj") if self.adjective else []
        tail += words(noun, f"{role}.noun")
        first = tail[0].text
        determiner = {
            "a": "an" if first[0] in "aeiou" else "a",
            "this": "these" if self.plural else "this",
            "number": number_words(self.count, "en"),
            "bare": "",
        }.get(self.determiner, self.determiner)
        return words(determiner, f"{role}.det") + tail

    def german(self, case: str, negative: bool = False, preposition: str | None = None) -> str:
        """The phrase in ``case`` (nom | acc | dat), after ``preposition`` if given.

        ``negative`` turns an indefinite article into kein (kein Hund, keine Äpfel).
        """
        return render(self.german_words(case, negative, preposition))[0]

    def german_words(
        self,
        case: str,
        negative: bool = False,
        preposition: str | None = None,
        role: str = "np",
        negation: str = "neg",
    ) -> list[Word]:
        """:meth:`german`, tagged as :meth:`english_words` does (``<role>.prep`` for the
        preposition; a contraction im = in + dem carries both tags, kein ``negation`` too)."""
        prep = words(preposition, f"{role}.prep") if preposition else []
        if self.pronoun or self.name:
            head = PRONOUNS[self.pronoun][0] if self.pronoun else self.name
            return prep + words(head, f"{role}.head")
        slot = "pl" if self.plural else self.noun.gender
        article, endings = self._german_article(case, slot, negative)
        det_tags = (f"{role}.det", negation) if negative and article else (f"{role}.det",)
        front = words(article, *det_tags) if article else []
        if preposition and article and (preposition, article) in CONTRACTIONS:
            front = words(CONTRACTIONS[preposition, article], f"{role}.prep", *det_tags)
        else:
            front = prep + front
        if self.adjective:
            ending = STRONG_PLURAL[case] if endings is None else endings[case][slot]
            front += words(self.adjective.de_stem + ending, f"{role}.adj")
        return front + words(self._german_noun(case), f"{role}.noun")

    def _german_article(self, case: str, slot: str, negative: bool):
        """(article or None, adjective ending table or None for strong endings)."""
        determiner = self.determiner
        if determiner == "the":
            return DEFINITE[case][slot], WEAK
        if determiner == "this":
            return "dies" + DER_ENDINGS[case][slot], WEAK
        if determiner in POSSESSIVES:
            return POSSESSIVES[determiner] + EIN_ENDINGS[case][slot], MIXED
        if negative and determiner in ("a", "bare"):
            return "kein" + EIN_ENDINGS[case][slot], MIXED
        if determiner == "a":
            return "ein" + EIN_ENDINGS[case][slot], MIXED
        if determiner == "number":
            return number_words(self.count, "de"), None
        return None, None  # bare plural

    def _german_noun(self, case: str) -> str:
        noun = self.noun
        if not self.plural:
            return noun.de_oblique if noun.de_oblique and case != "nom" else noun.de
        if case == "dat" and not noun.de_plural.endswith(("n", "s")):
            return noun.de_plural + "n"
        return noun.de_plural
