"""Noun phrases and verb forms in English and German.

German inflects what English leaves bare: the article and the adjective ending depend on
gender, case and number (der große Hund / den großen Hund / einem großen Hund), weak nouns
take -n outside the nominative, dative plurals take -n, and prepositions merge with the
article (in dem → im). These tables are the textbook paradigms.
"""

from __future__ import annotations

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
        if self.pronoun:
            return self.pronoun
        if self.name:
            return self.name
        noun = self.noun.en_plural if self.plural else self.noun.en
        words = [self.adjective.en, noun] if self.adjective else [noun]
        if self.determiner == "a":
            return " ".join(["an" if words[0][0] in "aeiou" else "a", *words])
        if self.determiner == "this":
            return " ".join(["these" if self.plural else "this", *words])
        if self.determiner == "number":
            return " ".join([number_words(self.count, "en"), *words])
        if self.determiner == "bare":
            return " ".join(words)
        return " ".join([self.determiner, *words])

    def german(self, case: str, negative: bool = False, preposition: str | None = None) -> str:
        """The phrase in ``case`` (nom | acc | dat), after ``preposition`` if given.

        ``negative`` turns an indefinite article into kein (kein Hund, keine Äpfel).
        """
        if self.pronoun or self.name:
            words = [PRONOUNS[self.pronoun][0] if self.pronoun else self.name]
            return " ".join([preposition, *words] if preposition else words)
        slot = "pl" if self.plural else self.noun.gender
        article, endings = self._german_article(case, slot, negative)
        words = [article] if article else []
        if preposition and article and (preposition, article) in CONTRACTIONS:
            words = [CONTRACTIONS[preposition, article]]
        elif preposition:
            words = [preposition, *words]
        if self.adjective:
            ending = STRONG_PLURAL[case] if endings is None else endings[case][slot]
            words.append(self.adjective.de_stem + ending)
        words.append(self._german_noun(case))
        return " ".join(words)

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
