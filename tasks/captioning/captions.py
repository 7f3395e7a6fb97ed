"""Captions of a scene graph, and the facts a caption states.

Reference captions come from varied templates: the objects listed from left to right ("a
small red circle, a large blue square and a small green triangle"), and a spatial relation
for every pair of objects, the left one first ("there is a small red circle above a large
blue square"); optionally how many objects of each size. Together they state every object
with all its attributes and every pairwise relation, so the scene facts can be read back
from the references alone (:func:`facts_of`) — that is how the attribute metrics know the
scene without any side channel, and how the tests check that captions say exactly what the
scene holds.
"""

from __future__ import annotations

import itertools
import random
import re
from collections import Counter
from dataclasses import dataclass

from xbench_tasks.captioning.scenes import COLOURS, SHAPES, SIZES, Scene

INVERSE = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}
RELATION_TEMPLATES = ("{a} {rel} {b}", "{a} is {rel} {b}", "there is {a} {rel} {b}")
NUMBER_WORDS = ("no", "one", "two", "three", "four")
LIST_TEMPLATES = ("{objects}", "from left to right: {objects}")

Mention = tuple[str | None, str | None, str | None, str]  # size, texture, colour, shape


def noun_phrase(obj: dict) -> str:
    texture = "striped " if obj["texture"] == "striped" else ""
    return f"a {obj['size']} {texture}{obj['colour']} {obj['shape']}"


def relation(a: dict, b: dict) -> str:
    """Where ``a`` lies with respect to ``b``, along the axis on which they are further apart."""
    dx, dy = a["x"] - b["x"], a["y"] - b["y"]
    if abs(dx) >= abs(dy):
        return "left of" if dx < 0 else "right of"
    return "above" if dy < 0 else "below"


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def count_caption(scene: Scene) -> str:
    """How many objects of each size, e.g. "four shapes: one small and three large"."""
    sizes = Counter(o["size"] for o in scene["objects"])
    by_size = [f"{NUMBER_WORDS[sizes[size]]} {size}" for size in SIZES if sizes[size]]
    return f"{NUMBER_WORDS[len(scene['objects'])]} shapes: {_join(by_size)}"


def references(scene: Scene, rng: random.Random, counts: bool = False) -> list[str]:
    """Reference captions: the objects from left to right in each list template, then one
    relation per pair (the left object first, template drawn from ``rng``), then (with
    ``counts``) the count caption. A marked scene's one reference names its marked object."""
    if "marked" in scene:
        return [noun_phrase(scene["objects"][scene["marked"]])]
    ordered = sorted(scene["objects"], key=lambda o: o["x"])
    listed = _join([noun_phrase(o) for o in ordered])
    captions = [template.format(objects=listed) for template in LIST_TEMPLATES]
    for a, b in itertools.combinations(ordered, 2):
        template = rng.choice(RELATION_TEMPLATES)
        captions.append(template.format(a=noun_phrase(a), rel=relation(a, b), b=noun_phrase(b)))
    return captions + [count_caption(scene)] if counts else captions


_NP = (
    rf"\ba (?:({'|'.join(SIZES)}) )?(?:(striped) )?"
    rf"(?:({'|'.join(COLOURS)}) )?({'|'.join(SHAPES)})\b"
)
_NP_RE = re.compile(_NP)
_WORD = re.compile(r"\w+")
_RELATION_RE = re.compile(rf"({_NP}) (?:is )?(left of|right of|above|below) ({_NP})")


def _mention(match: re.Match, offset: int = 0) -> Mention:
    """A full noun phrase (size and colour named) without "striped" means a plain object;
    a shorter one leaves the texture unsaid."""
    size, texture, colour, shape = match.groups()[offset : offset + 4]
    return size, texture or ("plain" if size and colour else None), colour, shape


def object_phrases(caption: str) -> list[tuple[int, int, str]]:
    """``(start, end, shape)`` of each noun phrase's attribute words in ``caption`` (its
    characters after the article: size, texture, colour, shape), for aligning those words
    with the object's patches; a scene holds each shape once, so the shape names it."""
    return [(m.start() + 2, m.end(), m.group(4)) for m in _NP_RE.finditer(caption.lower())]


@dataclass(frozen=True)
class Facts:
    """What captions say: object mentions and (subject, relation, object) statements."""

    mentions: tuple[Mention, ...]
    relations: tuple[tuple[Mention, str, Mention], ...]


def caption_words(text: str) -> str:
    """Lower-cased words joined by single spaces, punctuation dropped."""
    return " ".join(_WORD.findall(text.lower()))


def parse(caption: str) -> Facts:
    """The object mentions and relation statements of one caption (lower-case words)."""
    text = caption_words(caption)
    mentions = tuple(_mention(m) for m in _NP_RE.finditer(text))
    relations = []
    for m in _RELATION_RE.finditer(text):
        relations.append((_mention(m, 1), m.group(6), _mention(m, 7)))
    return Facts(mentions, tuple(relations))


def facts_of(captions: list[str]) -> Facts:
    """The scene a set of reference captions describes: its full object mentions and its
    relations, closed under converse ("a left of b" also gives "b right of a")."""
    parsed = [parse(c) for c in captions]
    mentions = {m for p in parsed for m in p.mentions if None not in m}
    relations = set()
    for p in parsed:
        for a, rel, b in p.relations:
            relations |= {(a, rel, b), (b, INVERSE[rel], a)}
    return Facts(tuple(sorted(mentions)), tuple(sorted(relations)))


def matches(mention: Mention, obj: Mention) -> bool:
    """Whether every attribute the mention names agrees with the (fully described) object."""
    return all(said is None or said == real for said, real in zip(mention, obj, strict=True))


def scene_mentions(scene: Scene) -> set[Mention]:
    """The full mention of every object of a scene graph."""
    return {(o["size"], o["texture"], o["colour"], o["shape"]) for o in scene["objects"]}


def scene_relations(scene: Scene) -> set[tuple[Mention, str, Mention]]:
    """Every ordered pair's relation, as full mentions."""
    full = {id(o): (o["size"], o["texture"], o["colour"], o["shape"]) for o in scene["objects"]}
    return {
        (full[id(a)], relation(a, b), full[id(b)])
        for a, b in itertools.permutations(scene["objects"], 2)
    }
