"""Embedded QA data: contexts of generated facts about people and organisations, and a
question whose answer is a span of the context.

Answering needs cross-attention: the answer is a random attribute that appears only in the
context, next to the entity the question names, among facts about other entities and
(``distractors``) other facts about the same entity. ``two_hop`` questions go through a
person's employer to that organisation's city. Everything is drawn from one seeded RNG.

For a length curriculum a split's contexts may vary in length (``min_facts`` … ``num_facts``
facts each); ``full_names`` gives short contexts the first-and-last names of long ones, so
a model trained short reads names the way it will at long evaluation lengths. ``coined``
names are invented one-word names from a pool of thousands: every person of even the
longest context has a name of one token, so the entity to find is one exact match however
many people a context holds (with first and last names, a short context rarely has two
people sharing a first name and a model trained on it learns to match one of the two words).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from xbench_tasks.qa.examples import QAExample
from xbench_tasks.qa.filler import with_filler

# Part of the cache key: bump it whenever the generator's output changes.
GENERATOR_VERSION = 4

FIRST_NAMES = [
    "anna",
    "ben",
    "clara",
    "david",
    "emma",
    "felix",
    "greta",
    "hugo",
    "ida",
    "jonas",
    "karla",
    "leon",
    "mia",
    "noah",
    "olga",
    "paul",
    "rosa",
    "sven",
    "tara",
    "udo",
    "vera",
    "walter",
    "xenia",
    "yusuf",
    "zoe",
    "alma",
    "boris",
    "carla",
    "dora",
    "emil",
    "frida",
]
SURNAMES = [
    "berg",
    "fischer",
    "hansen",
    "ivanov",
    "jensen",
    "keller",
    "lang",
    "meyer",
    "novak",
    "olsen",
    "petrov",
    "quist",
    "richter",
    "schmidt",
    "torres",
    "ulrich",
    "vogel",
    "weber",
    "young",
    "zimmer",
    "adler",
    "brandt",
    "costa",
    "duval",
    "engel",
]
CITIES = [
    "oslo",
    "paris",
    "lima",
    "cairo",
    "delhi",
    "tokyo",
    "quito",
    "dakar",
    "hanoi",
    "sofia",
    "riga",
    "kyiv",
    "rome",
    "bern",
    "vienna",
    "lisbon",
    "madrid",
    "athens",
    "dublin",
    "prague",
    "warsaw",
    "zagreb",
    "tunis",
    "accra",
    "nairobi",
    "lagos",
    "seoul",
    "manila",
]
NAMES = FIRST_NAMES + SURNAMES
NAME_STYLES = ("auto", "coined")
ORG_STEMS = [
    "nord",
    "sol",
    "apex",
    "delta",
    "ever",
    "terra",
    "nova",
    "lumen",
    "orbit",
    "vega",
    "polar",
    "atlas",
    "zen",
    "iron",
]
ORG_KINDS = ["bank", "labs", "motors", "foods", "energy", "media", "systems", "works"]
ANIMALS = ["horses", "cats", "dogs", "goats", "sheep", "bees", "ducks", "rabbits"]
MONTHS = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
]


@dataclass(frozen=True)
class QAGeneratorOptions:
    """Shape of one split's embedded data (mirrors the task's ``data`` options).

    ``min_facts`` > 0: each context has a number of facts drawn uniformly from
    ``min_facts`` … ``num_facts``; 0: exactly ``num_facts``. ``full_names``: people always
    go by first and last name, whatever the context's length. ``filler_words``: filler
    sentences of at least that many words spread between the facts (a haystack);
    ``vary_filler``: each context draws its filler uniformly from 0 … ``filler_words``.
    """

    num_facts: int
    distractors: int
    two_hop: float
    seed: int
    min_facts: int = 0
    full_names: bool = False
    names: str = "auto"
    filler_words: int = 0
    vary_filler: bool = False

    def __post_init__(self) -> None:
        if self.names not in NAME_STYLES:
            raise ValueError(f"names={self.names!r}: choose one of {NAME_STYLES}")
        if self.min_facts > self.num_facts:
            raise ValueError(f"min_facts={self.min_facts} exceeds num_facts={self.num_facts}")


@dataclass
class _Person:
    name: str
    city: str
    employer: str
    birth: str
    age: str
    animals: tuple[str, str]


@dataclass
class _Org:
    name: str
    city: str
    founded: str


def _date(rng: random.Random) -> str:
    return f"{rng.randint(1, 28)} {rng.choice(MONTHS)} {rng.randint(1940, 2005)}"


def _person_facts(p: _Person) -> dict[str, tuple[str, str, str]]:
    """relation → (fact sentence, question, answer)."""
    count, animal = p.animals
    return {
        "city": (f"{p.name} lives in {p.city} .", f"where does {p.name} live ?", p.city),
        "employer": (
            f"{p.name} works for {p.employer} .",
            f"who does {p.name} work for ?",
            p.employer,
        ),
        "birth": (f"{p.name} was born on {p.birth} .", f"when was {p.name} born ?", p.birth),
        "age": (f"{p.name} is {p.age} years old .", f"how old is {p.name} ?", p.age),
        "animals": (
            f"{p.name} owns {count} {animal} .",
            f"how many {animal} does {p.name} own ?",
            count,
        ),
    }


def _org_facts(o: _Org) -> dict[str, tuple[str, str, str]]:
    return {
        "city": (f"{o.name} is based in {o.city} .", f"where is {o.name} based ?", o.city),
        "founded": (
            f"{o.name} was founded in {o.founded} .",
            f"when was {o.name} founded ?",
            o.founded,
        ),
    }


def _coined_names() -> list[str]:
    """Two-syllable invented names (``bako``, ``tirema`` …), none a word the facts use."""
    syllables = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]
    taken = set(NAMES + CITIES + ORG_STEMS + ORG_KINDS + ANIMALS + MONTHS)
    return [a + b for a in syllables for b in syllables if a + b not in taken]


COINED_NAMES = _coined_names()


def full_names_needed(num_facts: int) -> bool:
    """Whether a context of ``num_facts`` facts has more people than single names."""
    return _people_count(num_facts) > len(NAMES)


def _people_count(num_facts: int) -> int:
    return max(2, num_facts // 2)


def generate_example(rng: random.Random, options: QAGeneratorOptions, uid: str) -> QAExample:
    """One context of about ``num_facts`` facts and one question answered by a span of it
    (``min_facts`` … ``num_facts`` facts when ``min_facts`` is set).

    People go by one name while a context has few of them; long contexts (more people than
    single names) and ``full_names`` use first and last names, so every person stays
    unique; ``names="coined"`` gives everyone an invented one-word name instead.
    """
    num_facts = options.num_facts
    if options.min_facts:
        num_facts = rng.randint(options.min_facts, options.num_facts)
    org_names = [f"{stem} {kind}" for stem in ORG_STEMS for kind in ORG_KINDS]
    orgs = [
        _Org(name, rng.choice(CITIES), str(rng.randint(1850, 2015)))
        for name in rng.sample(org_names, min(max(2, num_facts // 6), len(org_names)))
    ]
    people_count = _people_count(num_facts)
    if options.names == "coined":
        names = rng.sample(COINED_NAMES, min(people_count, len(COINED_NAMES)))
    elif not options.full_names and not full_names_needed(num_facts):
        names = rng.sample(NAMES, people_count)
    else:
        full = [f"{first} {last}" for first in FIRST_NAMES for last in SURNAMES]
        names = rng.sample(full, min(people_count, len(full)))
    people = [
        _Person(
            name,
            rng.choice(CITIES),
            rng.choice(orgs).name,
            _date(rng),
            str(rng.randint(18, 90)),
            (str(rng.randint(2, 99)), rng.choice(ANIMALS)),
        )
        for name in names
    ]
    target = people[0]
    if rng.random() < options.two_hop:
        employer = next(o for o in orgs if o.name == target.employer)
        question = f"where is the employer of {target.name} based ?"
        answer = employer.city
        needed = [_person_facts(target)["employer"][0], _org_facts(employer)["city"][0]]
    else:
        relation = rng.choice(sorted(_person_facts(target)))
        needed_fact, question, answer = _person_facts(target)[relation]
        needed = [needed_fact]
    same_entity = [f for f, _, _ in _person_facts(target).values() if f not in needed]
    rng.shuffle(same_entity)
    facts = needed + same_entity[: options.distractors]
    pool = [f for p in people[1:] for f, _, _ in _person_facts(p).values()]
    pool += [f for o in orgs for f, _, _ in _org_facts(o).values() if f not in facts]
    rng.shuffle(pool)
    facts += pool[: max(0, num_facts - len(facts))]
    rng.shuffle(facts)
    if options.filler_words:
        words = rng.randint(0, options.filler_words) if options.vary_filler else None
        facts = with_filler(rng, facts, options.filler_words if words is None else words)
    start = answer_start(facts, needed[-1], answer)
    return QAExample(uid, " ".join(facts), question, (answer,), start)


def answer_start(facts: list[str], stating: str, answer: str) -> int:
    """Character offset of ``answer`` inside the fact ``stating`` it (the last fact a
    two-hop question needs) once ``facts`` are joined by spaces: the span the alignment
    points at, whichever other fact repeats the same word."""
    offset = 0
    for fact in facts:
        if fact == stating:
            return offset + fact.rindex(f" {answer} ") + 1
        offset += len(fact) + 1
    raise ValueError(f"the fact {stating!r} is not in the context")


def generate_split(
    options: QAGeneratorOptions, split: str, count: int, exclude: set[tuple[str, str]] = frozenset()
) -> list[QAExample]:
    """``count`` examples for ``split``, none with a (context, question) pair in ``exclude``."""
    rng = random.Random(f"{options.seed}/{split}")
    examples: list[QAExample] = []
    while len(examples) < count:
        example = generate_example(rng, options, f"{split}-{len(examples)}")
        if (example.context, example.question) not in exclude:
            examples.append(example)
    return examples
