"""Warnings for length caps that cut a large share of what a task's examples hold.

A cap that silently drops the end of many sources (or targets) changes the task for every
backend alike, so the figures stop meaning what the user thinks. A task reports it through
``Task.data_warnings``; the runner prints the line and stores it in the record.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

__all__ = ["CUT_SHARE", "truncation_warning", "truncation_warnings"]

#: An example counts as cut when the cap removes more than this share of its tokens.
CUT_SHARE = 0.1


def truncation_warning(option: str, cap: int, lengths: Iterable[int], what: str) -> str | None:
    """One line naming ``option=cap`` and how many of ``what`` (e.g. "test sources") of the
    given full ``lengths`` it cuts by more than :data:`CUT_SHARE`; None when it cuts none."""
    lengths = list(lengths)
    cut = sum(1 for length in lengths if length - cap > CUT_SHARE * length)
    if not cut:
        return None
    return (
        f"{option}={cap} cut more than {CUT_SHARE:.0%} off {cut} of {len(lengths)} {what} "
        f"({cut / len(lengths):.0%})"
    )


def truncation_warnings(
    option: str, cap: int, lengths: Mapping[str, Iterable[int]], noun: str
) -> list[str]:
    """:func:`truncation_warning` of each split's ``lengths`` ({split: full lengths}), for
    the splits it fires on; ``noun`` names what is cut ("sources", "captions")."""
    lines = (truncation_warning(option, cap, n, f"{split} {noun}") for split, n in lengths.items())
    return [line for line in lines if line]
