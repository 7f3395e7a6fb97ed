"""English → German sentence pairs generated from the lexicon.

The pairs exercise what makes translation need cross-attention: agreement (article and
adjective endings by gender, case and number), reordering (verb-second main clauses, the
finite verb last in weil/dass/wenn clauses, participles and infinitives at the end,
separable prefixes split off in main clauses), number words, and many-to-one alignments
(is going to → wird, does not → nicht, not a → kein, in the → im, looks for → sucht,
watches TV → sieht fern). Every choice is drawn from the ``random.Random`` passed in.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from xbench_tasks.translation.lexicon import Adjective, Lexicon, Noun, TimeAdverb, Verb
from xbench_tasks.translation.phrases import AUXILIARIES, POSSESSIVES, PRONOUNS, NounPhrase

TENSES = ("present", "past", "future", "can", "must", "want")
TENSE_WEIGHTS = (40, 25, 20, 5, 5, 5)
ADVERBIAL_PREPOSITIONS = {"loc": ("in", "in"), "dest": ("to", "zu"), "with": ("with", "mit")}
ADVERBIAL_KINDS = {"loc": "l", "dest": "l", "with": "pa"}
SUBORDINATORS = {"because": "weil", "that": "dass"}


@dataclass(frozen=True)
class Clause:
    """One clause, independent of word order; rendered in English and in German."""

    subject: NounPhrase
    verb: Verb | None  # None: copula with ``predicate``
    tense: str
    negated: bool = False
    dative: NounPhrase | None = None
    accusative: NounPhrase | None = None
    prepositional: NounPhrase | None = None
    adverbial: tuple[str, NounPhrase] | None = None
    time: TimeAdverb | None = None
    predicate: Adjective | None = None
    # English surface choices (the German stays the same)
    to_dative: bool = False  # gives a book to the child
    going_to: bool = False  # is going to read
    contracted: bool = False  # doesn't, won't, can't

    def english(self, time_first: bool = False) -> str:
        words = [self.time.en] if self.time and time_first else []
        words += [self.subject.english(), *self._english_verb()]
        if self.verb and self.verb.en_particle:
            words.append(self.verb.en_particle)
        if self.dative and self.accusative:
            pair = [self.dative.english(), self.accusative.english()]
            words += [pair[1], "to", pair[0]] if self.to_dative else pair
        else:
            words += [np.english() for np in (self.dative, self.accusative) if np]
        if self.prepositional:
            words.append(self.prepositional.english())
        if self.adverbial:
            kind, np = self.adverbial
            words += [ADVERBIAL_PREPOSITIONS[kind][0], np.english()]
        if self.predicate:
            words.append(self.predicate.en)
        if self.time and not time_first:
            words.append(self.time.en)
        return " ".join(words)

    def _english_verb(self) -> list[str]:
        agreement, base = self.subject.agreement, self.verb.en if self.verb else "be"
        third = agreement == "3sg"
        nt = "n't" if self.contracted else " not"
        if self.tense == "future" and self.going_to:
            be = {"1sg": "am", "3sg": "is"}.get(agreement, "are")
            return [f"{be}{' not' if self.negated else ''} going to", base]
        if self.tense == "future":
            return [("won't" if self.contracted else "will not") if self.negated else "will", base]
        if self.verb is None:
            if self.tense == "past":
                form = "was" if agreement in ("1sg", "3sg") else "were"
            else:
                form = {"1sg": "am", "3sg": "is"}.get(agreement, "are")
            return [form + (nt if form != "am" else " not") if self.negated else form]
        if self.tense == "can":
            return [("can't" if self.contracted else "cannot") if self.negated else "can", base]
        if self.tense in ("must", "want"):
            verb = {"must": ("has to", "have to"), "want": ("wants to", "want to")}[self.tense]
            if self.negated:
                return [("does" if third else "do") + nt, verb[1], base]
            return [verb[0] if third else verb[1], base]
        if self.negated:
            do = "did" if self.tense == "past" else ("does" if third else "do")
            return [do + nt, base]
        if self.tense == "past":
            return [self.verb.en_past]
        return [self.verb.en_3sg if third else base]

    def german(self, order: str, time_first: bool = False) -> str:
        """``order``: main (verb second), inverted (verb first, after a wenn-clause) or sub
        (verb last, after weil/dass/wenn)."""
        finite, closing = self._german_verb()
        middle = self._german_middle(skip_time=time_first)
        subject = self.subject.german("nom")
        if order == "sub":
            if self.tense == "present" and self.verb and self.verb.de_prefix:
                return " ".join([subject, *middle, self.verb.de_prefix + finite])
            return " ".join([subject, *middle, *closing, finite])
        if order == "inverted":
            return " ".join([finite, subject, *middle, *closing])
        if time_first:
            return " ".join([self.time.de, finite, subject, *middle, *closing])
        return " ".join([subject, finite, *middle, *closing])

    def _german_verb(self) -> tuple[str, list[str]]:
        """The finite verb and what closes the clause (prefix, participle, infinitive)."""
        person, verb = self.subject.person, self.verb
        if verb is None:
            if self.tense == "future":
                return AUXILIARIES["werden"][person], ["sein"]
            return AUXILIARIES["war" if self.tense == "past" else "sein"][person], []
        if self.tense == "past":
            return AUXILIARIES[verb.de_auxiliary][person], [verb.de_participle]
        if self.tense in ("future", "can", "must", "want"):
            auxiliary = "werden" if self.tense == "future" else self.tense
            return AUXILIARIES[auxiliary][person], [verb.de_infinitive]
        finite = verb.de_present[person] if person < 3 else verb.de_root
        return finite, [verb.de_prefix] if verb.de_prefix else []

    def _german_middle(self, skip_time: bool) -> list[str]:
        """Time, dative, accusative, nicht, prepositional object, adverbial, predicate."""
        words = [self.time.de] if self.time and not skip_time else []
        negate = self.negated
        for np, case in ((self.dative, "dat"), (self.accusative, "acc")):
            if np:
                kein = negate and np.indefinite
                words.append(np.german(case, negative=kein))
                negate = negate and not kein
        if negate:
            words.append("nicht")
        if self.prepositional:
            preposition, case = self.verb.frame.split(":")
            words.append(self.prepositional.german(case, preposition=preposition))
        if self.adverbial:
            kind, np = self.adverbial
            words.append(np.german("dat", preposition=ADVERBIAL_PREPOSITIONS[kind][1]))
        if self.predicate:
            words.append(self.predicate.de)
        return words


class SentenceGenerator:
    """Draws meaningful clauses and sentences from the lexicon.

    ``max_number`` bounds the number words (2 … max_number) used as counts.
    """

    def __init__(self, lexicon: Lexicon, max_number: int) -> None:
        self.lexicon = lexicon
        self.numbers = [n for n in range(2, max_number + 1) if n < 100 or n % 100 != 1]
        self.main_verbs = [v for v in lexicon.verbs if v.frame != "that"]
        self.that_verbs = [v for v in lexicon.verbs if v.frame == "that"]
        self._nouns: dict[str, list[Noun]] = {}
        self._adjectives: dict[str, list[Adjective]] = {}

    def _fitting(self, table: dict, items: tuple, kinds: str) -> list:
        """The items (nouns or adjectives) of any of ``kinds``, computed once per kinds."""
        if kinds not in table:
            table[kinds] = [item for item in items if set(item.kinds) & set(kinds)]
        return table[kinds]

    def sentence(self, rng: random.Random) -> tuple[str, str]:
        """An (English, German) pair: a main clause, or one joined to a subordinate clause."""
        kind = rng.choices(("main", "because", "that", "if"), (50, 20, 15, 15))[0]
        if kind == "main":
            clause = self.clause(rng)
            return sentence_pair(
                "main", clause, time_first=bool(clause.time) and rng.random() < 0.5
            )
        if kind == "that":
            speaker = self.noun_phrase(rng, "p", subject=True)
            first = Clause(speaker, rng.choice(self.that_verbs), "present")
        else:
            first = self.clause(rng)
            kind = rng.choice(("if", "when")) if kind == "if" else kind
        return sentence_pair(kind, first, self.clause(rng))

    def clause(self, rng: random.Random) -> Clause:
        tense = rng.choices(TENSES, TENSE_WEIGHTS)[0]
        negated = rng.random() < 0.25
        if rng.random() < 0.1:
            return self._copula(rng, "future" if tense not in ("present", "past") else tense)
        verb = rng.choice(self.main_verbs)
        if tense == "past" and verb.en_past == verb.en and not negated:
            tense = "present"  # "I read a book" would be ambiguous
        subject = self.noun_phrase(rng, verb.subject_kinds, subject=True)
        parts = {}
        objects = verb.object_kinds.split("/")
        if verb.frame == "dat_acc":
            parts["dative"] = self.noun_phrase(rng, objects[0])
            parts["accusative"] = self.noun_phrase(rng, objects[1])
        elif verb.frame in ("acc", "dat"):
            key = "accusative" if verb.frame == "acc" else "dative"
            parts[key] = self.noun_phrase(rng, objects[0])
        elif verb.frame != "intr":
            parts["prepositional"] = self.noun_phrase(rng, objects[0])
        if verb.adverbials and (verb.adverbial_required or rng.random() < 0.5):
            kind = rng.choice(verb.adverbials)
            parts["adverbial"] = (kind, self.noun_phrase(rng, ADVERBIAL_KINDS[kind]))
        return Clause(
            subject,
            verb,
            tense,
            negated,
            time=self._time(rng, tense),
            to_dative=rng.random() < 0.5,
            going_to=rng.random() < 0.5,
            contracted=rng.random() < 0.5,
            **parts,
        )

    def _copula(self, rng: random.Random, tense: str) -> Clause:
        adjective = rng.choice(self.lexicon.adjectives)
        return Clause(
            self.noun_phrase(rng, adjective.kinds, subject=True),
            None,
            tense,
            negated=rng.random() < 0.25,
            time=self._time(rng, tense),
            predicate=adjective,
            going_to=rng.random() < 0.5,
            contracted=rng.random() < 0.5,
        )

    def _time(self, rng: random.Random, tense: str) -> TimeAdverb | None:
        if rng.random() >= 0.3:
            return None
        tense = tense if tense in ("past", "future") else "present"
        return rng.choice([a for a in self.lexicon.adverbs if tense in a.tenses])

    def noun_phrase(self, rng: random.Random, kinds: str, subject: bool = False) -> NounPhrase:
        """A phrase for a noun of one of ``kinds``; persons may be pronouns or names."""
        if "p" in kinds and subject and rng.random() < 0.3:
            if rng.random() < 0.6:
                return NounPhrase(pronoun=rng.choice(sorted(PRONOUNS)))
            return NounPhrase(name=rng.choice(self.lexicon.names))
        noun = rng.choice(self._fitting(self._nouns, self.lexicon.nouns, kinds))
        options = ["the", "the", "a", "this", rng.choice(sorted(POSSESSIVES))]
        if noun.de_plural:
            options += ["plural-the", "bare", "number"]
        choice = rng.choice(options)
        if noun.en_plural == noun.en and choice in ("plural-the", "bare"):
            choice = "number"  # "the sheep" could be one or many
        plural = choice in ("plural-the", "bare", "number")
        determiner = "the" if choice == "plural-the" else choice
        fitting = self._fitting(self._adjectives, self.lexicon.adjectives, noun.kinds)
        adjective = rng.choice(fitting) if fitting and rng.random() < 0.3 else None
        count = rng.choice(self.numbers) if determiner == "number" else 0
        return NounPhrase(
            noun=noun, determiner=determiner, plural=plural, adjective=adjective, count=count
        )


def sentence_pair(
    kind: str, first: Clause, second: Clause | None = None, time_first: bool = False
) -> tuple[str, str]:
    """Join clauses into an (English, German) sentence.

    ``kind``: main (``first`` alone, its time adverbial in front if ``time_first``), because
    (``first`` + weil ``second``), that (``first`` says/knows … dass ``second``), if / when
    (wenn ``first``, then ``second`` with its verb first).
    """
    if kind == "main":
        en, de = first.english(time_first), first.german("main", time_first)
    elif kind in ("because", "that"):
        en = f"{first.english()} {kind} {second.english()}"
        de = f"{first.german('main')}, {SUBORDINATORS[kind]} {second.german('sub')}"
    else:
        en = f"{kind} {first.english()}, {second.english()}"
        de = f"wenn {first.german('sub')}, {second.german('inverted')}"
    return _capitalised(en), _capitalised(de)


def _capitalised(text: str) -> str:
    return text[0].upper() + text[1:] + "."
