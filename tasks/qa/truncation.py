"""What ``max_source_tokens`` removes from QA contexts, as one warning line per split.

A context cut short may lose its answer (the model then cannot extract it, whichever
backend runs) or a large share of its text; both are counted, so a run says so instead of
silently scoring every backend on unanswerable questions.
"""

from __future__ import annotations

from collections.abc import Sequence

from xbench.taskkit.text import split_words
from xbench.taskkit.truncation import CUT_SHARE
from xbench_tasks.qa.examples import QAExample


def _contains(words: Sequence[str], span: Sequence[str]) -> bool:
    """Whether ``span`` occurs as consecutive words of ``words``."""
    width = len(span)
    return any(list(words[i : i + width]) == list(span) for i in range(len(words) - width + 1))


def truncation_warning(split: str, examples: Sequence[QAExample], limit: int) -> str | None:
    """One line counting the ``split`` contexts whose first ``limit`` tokens lose every
    answer, or more than :data:`CUT_SHARE` of the context; None when neither happens.

    An answer counts as kept when its words still occur in the kept tokens (for an
    extractive model that is what matters, whichever occurrence the question meant).
    """
    lost, heavy = 0, 0
    for example in examples:
        if len(example.context) <= limit:  # every token has at least one character
            continue
        words = split_words(example.context)
        if len(words) <= limit:
            continue
        kept = words[:limit]
        heavy += len(words) - limit > CUT_SHARE * len(words)
        lost += not any(_contains(kept, split_words(answer)) for answer in example.answers)
    if not (lost or heavy):
        return None
    total = len(examples)
    return (
        f"max_source_tokens={limit} cut the answer out of {lost} of {total} {split} contexts "
        f"({lost / total:.0%}) and more than {CUT_SHARE:.0%} of the tokens of {heavy} "
        f"({heavy / total:.0%})"
    )
