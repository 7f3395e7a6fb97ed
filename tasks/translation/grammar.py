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
from functools import partial

from xbench_tasks.translation.lexicon import Adjective, Lexicon, Noun, TimeAdverb, Verb
from xbench_tasks.translation.phrases import (
    AUXILIARIES,
    POSSESSIVES,
    PRONOUNS,
    Links,
    NounPhrase,
    Word,
    render,
    word_links,
    words,
)

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
        return render(self.english_words(time_first))[0]

    def english_words(self, time_first: bool = False, clause: str = "a") -> list[Word]:
        """The English clause, each word tagged with what it expresses (``<clause>.<role>``
        and the noun phrases' parts) so :func:`~phrases.word_links` can align it."""
        role = partial(_role, clause)
        time = words(self.time.en, role("time")) if self.time else []
        out = list(time) if time_first else []
        out += self.subject.english_words(role("subj")) + self._english_verb(clause)
        if self.verb and self.verb.en_particle:
            out += words(self.verb.en_particle, role("verb"), role("pobj") + ".prep")
        if self.dative and self.accusative:
            dative = self.dative.english_words(role("dat"))
            accusative = self.accusative.english_words(role("acc"))
            to = words("to", role("dat") + ".det")
            out += accusative + to + dative if self.to_dative else dative + accusative
        else:
            for np, name in ((self.dative, "dat"), (self.accusative, "acc")):
                if np:
                    out += np.english_words(role(name))
        if self.prepositional:
            out += self.prepositional.english_words(role("pobj"))
        if self.adverbial:
            kind, np = self.adverbial
            out += words(ADVERBIAL_PREPOSITIONS[kind][0], role("adv") + ".prep")
            out += np.english_words(role("adv"))
        if self.predicate:
            out += words(self.predicate.en, role("pred"))
        if self.time and not time_first:
            out += time
        return out

    def _english_verb(self, clause: str) -> list[Word]:
        """The verb group: auxiliaries (``aux``: will, can, has to, a past form's tense),
        negation (``neg``: not, do-support) and the lexical verb (``verb``)."""
        aux, neg, verb = (_role(clause, name) for name in ("aux", "neg", "verb"))
        agreement, base = self.subject.agreement, self.verb.en if self.verb else "be"
        third = agreement == "3sg"
        negated, contracted = self.negated, self.contracted

        def nt(word: str, *tags: str) -> list[Word]:
            """``word`` negated: doesn't (one word, both tags) or does not."""
            if contracted:
                return words(word + "n't", *tags, neg)
            return words(word, *tags) + words("not", neg)

        if self.tense == "future" and self.going_to:
            be = {"1sg": "am", "3sg": "is"}.get(agreement, "are")
            return (
                words(be, aux) + (words("not", neg) if negated else []) + words("going to", aux)
            ) + words(base, verb)
        if self.tense == "future":
            if not negated:
                will = words("will", aux)
            elif contracted:
                will = words("won't", aux, neg)
            else:
                will = words("will", aux) + words("not", neg)
            return will + words(base, verb)
        if self.verb is None:
            if self.tense == "past":
                form = "was" if agreement in ("1sg", "3sg") else "were"
            else:
                form = {"1sg": "am", "3sg": "is"}.get(agreement, "are")
            if not negated:
                return words(form, aux)
            return words(form, aux) + words("not", neg) if form == "am" else nt(form, aux)
        if self.tense == "can":
            if not negated:
                return words("can", aux) + words(base, verb)
            can = "can't" if contracted else "cannot"
            return words(can, aux, neg) + words(base, verb)
        if self.tense in ("must", "want"):
            forms = {"must": ("has to", "have to"), "want": ("wants to", "want to")}[self.tense]
            if negated:
                return nt("does" if third else "do", neg) + words(forms[1], aux) + words(base, verb)
            return words(forms[0] if third else forms[1], aux) + words(base, verb)
        if negated:
            past = self.tense == "past"
            do = "did" if past else ("does" if third else "do")
            return nt(do, neg, *([aux] if past else [])) + words(base, verb)
        if self.tense == "past":
            return words(self.verb.en_past, verb, aux)
        return words(self.verb.en_3sg if third else base, verb)

    def german(self, order: str, time_first: bool = False) -> str:
        """``order``: main (verb second), inverted (verb first, after a wenn-clause) or sub
        (verb last, after weil/dass/wenn)."""
        return render(self.german_words(order, time_first))[0]

    def german_words(self, order: str, time_first: bool = False, clause: str = "a") -> list[Word]:
        """:meth:`german`, tagged as :meth:`english_words` tags the English."""
        finite, closing = self._german_verb(clause)
        middle = self._german_middle(time_first, clause)
        subject = self.subject.german_words("nom", role=_role(clause, "subj"))
        if order == "sub":
            if self.tense == "present" and self.verb and self.verb.de_prefix:
                joined = words(self.verb.de_prefix + finite[0].text, _role(clause, "verb"))
                return subject + middle + joined
            return subject + middle + closing + finite
        if order == "inverted":
            return finite + subject + middle + closing
        if time_first:
            return words(self.time.de, _role(clause, "time")) + finite + subject + middle + closing
        return subject + finite + middle + closing

    def _german_verb(self, clause: str) -> tuple[list[Word], list[Word]]:
        """The finite verb and what closes the clause (prefix, participle, infinitive)."""
        person, verb = self.subject.person, self.verb
        aux, lexical = _role(clause, "aux"), _role(clause, "verb")
        if verb is None:
            if self.tense == "future":
                return words(AUXILIARIES["werden"][person], aux), words("sein", lexical)
            return words(AUXILIARIES["war" if self.tense == "past" else "sein"][person], aux), []
        if self.tense == "past":
            finite = words(AUXILIARIES[verb.de_auxiliary][person], aux)
            return finite, words(verb.de_participle, lexical)
        if self.tense in ("future", "can", "must", "want"):
            auxiliary = "werden" if self.tense == "future" else self.tense
            return words(AUXILIARIES[auxiliary][person], aux), words(verb.de_infinitive, lexical)
        finite = verb.de_present[person] if person < 3 else verb.de_root
        return words(finite, lexical), words(verb.de_prefix, lexical) if verb.de_prefix else []

    def _german_middle(self, skip_time: bool, clause: str) -> list[Word]:
        """Time, dative, accusative, nicht, prepositional object, adverbial, predicate."""
        role = partial(_role, clause)
        out = words(self.time.de, role("time")) if self.time and not skip_time else []
        negate = self.negated
        for np, case, name in ((self.dative, "dat", "dat"), (self.accusative, "acc", "acc")):
            if np:
                kein = negate and np.indefinite
                out += np.german_words(case, negative=kein, role=role(name), negation=role("neg"))
                negate = negate and not kein
        if negate:
            out += words("nicht", role("neg"))
        if self.prepositional:
            preposition, case = self.verb.frame.split(":")
            out += self.prepositional.german_words(case, preposition=preposition, role=role("pobj"))
        if self.adverbial:
            kind, np = self.adverbial
            preposition = ADVERBIAL_PREPOSITIONS[kind][1]
            out += np.german_words("dat", preposition=preposition, role=role("adv"))
        if self.predicate:
            out += words(self.predicate.de, role("pred"))
        return out


def _role(clause: str, name: str) -> str:
    return f"{clause}.{name}"


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
        english, german, _ = self.aligned_sentence(rng)
        return english, german

    def aligned_sentence(self, rng: random.Random) -> tuple[str, str, Links]:
        """:meth:`sentence` with its word alignment (:func:`aligned_pair`)."""
        kind = rng.choices(("main", "because", "that", "if"), (50, 20, 15, 15))[0]
        if kind == "main":
            clause = self.clause(rng)
            return aligned_pair("main", clause, time_first=bool(clause.time) and rng.random() < 0.5)
        if kind == "that":
            speaker = self.noun_phrase(rng, "p", subject=True)
            first = Clause(speaker, rng.choice(self.that_verbs), "present")
        else:
            first = self.clause(rng)
            kind = rng.choice(("if", "when")) if kind == "if" else kind
        return aligned_pair(kind, first, self.clause(rng))

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
    english, german = sentence_words(kind, first, second, time_first)
    return render(english)[0], render(german)[0]


def aligned_pair(
    kind: str, first: Clause, second: Clause | None = None, time_first: bool = False
) -> tuple[str, str, Links]:
    """:func:`sentence_pair` and its word alignment: ``(German start, end, English start,
    end)`` character spans of each pair of words that express the same thing."""
    english, german = sentence_words(kind, first, second, time_first)
    return render(english)[0], render(german)[0], word_links(english, german)


def sentence_words(
    kind: str, first: Clause, second: Clause | None = None, time_first: bool = False
) -> tuple[list[Word], list[Word]]:
    """The tagged words of :func:`sentence_pair`'s English and German sentences."""
    if kind == "main":
        en = first.english_words(time_first)
        de = first.german_words("main", time_first)
    elif kind in ("because", "that"):
        en = first.english_words() + words(kind, "sub") + second.english_words(clause="b")
        de = first.german_words("main") + [Word(",", frozenset({"de.comma"}), glued=True)]
        de += words(SUBORDINATORS[kind], "sub") + second.german_words("sub", clause="b")
    else:
        comma = Word(",", frozenset({"comma"}), glued=True)
        en = words(kind, "sub") + first.english_words() + [comma]
        en += second.english_words(clause="b")
        de = words("wenn", "sub") + first.german_words("sub") + [comma]
        de += second.german_words("inverted", clause="b")
    return _capitalised(en), _capitalised(de)


def _capitalised(sentence: list[Word]) -> list[Word]:
    first = sentence[0]
    head = Word(first.text[0].upper() + first.text[1:], first.tags, first.glued)
    return [head, *sentence[1:], Word(".", frozenset({"end"}), glued=True)]
