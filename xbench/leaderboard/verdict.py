"""The control's verdict: is the ``uniform`` control statistically worse than the exact
reference on a board's test examples? If it is not, the task on this data can be solved
without looking at the right source positions (a one-word utterance is a classification
that mean-pooling solves), so no ranking of backends on it says anything about
cross-attention, and the board says so."""

from __future__ import annotations

from dataclasses import dataclass

from xbench.leaderboard.paired import CONFIDENCE, PairedDifference

#: The control backend: one vector, the mean of the source, for every query.
CONTROL = "uniform"


@dataclass(frozen=True)
class ControlVerdict:
    """The verdict of one control row against its reference row. ``measures`` is True
    when the control is statistically worse than the reference (in the metric's
    direction), False when it is not, None when it cannot be said (``text`` says why)."""

    control: str
    reference: str | None
    measures: bool | None
    text: str


def control_verdict(
    control: str,
    reference: str | None,
    reference_exact: bool,
    difference: PairedDifference | None,
    unpaired: str,
    higher_is_better: bool,
) -> ControlVerdict:
    """The verdict of the control row labelled ``control`` against ``reference`` (a row
    label, None when it has none), from their paired ``difference``."""
    if reference is None:
        return ControlVerdict(control, None, None, f"{control}: no reference row to compare")
    if not reference_exact:
        why = f"the reference {reference} is not an exact backend"
        return ControlVerdict(control, reference, None, f"{control}: no verdict, {why}")
    if difference is None:
        why = unpaired or "no per-example scores"
        return ControlVerdict(control, reference, None, f"{control}: no verdict ({why})")
    worse = difference.high < 0 if higher_is_better else difference.low > 0
    interval = (
        f"{difference.delta:+.4g} [{difference.low:+.4g}, {difference.high:+.4g}], "
        f"{CONFIDENCE:.0%} paired bootstrap over {difference.examples} test examples"
    )
    if worse:
        text = (
            f"{control} is statistically worse than {reference} ({interval}): the task on this "
            "data measures cross-attention"
        )
    else:
        text = (
            f"WARNING: {control} is not statistically worse than {reference} ({interval}): on "
            "this data the task does not measure cross-attention, so no backend ranking on "
            "it means anything"
        )
    return ControlVerdict(control, reference, worse, text)
