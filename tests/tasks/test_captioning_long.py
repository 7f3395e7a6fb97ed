"""Captioning at high resolution: the truncation warning of the caption cap."""

from __future__ import annotations

from xbench_tasks.captioning import CaptionDataOptions, CaptioningOptions, build_captioning

SMALL = CaptioningOptions(
    data=CaptionDataOptions(train_size=40, val_size=5, test_size=5),
    image_size=24,
    patch_size=6,
    batch_size=8,
)


def test_a_cap_that_cuts_captions_is_a_warning_with_the_count():
    full = build_captioning(SMALL)
    assert full.data_warnings == []
    cap = 12
    task = build_captioning(CaptioningOptions(**{**vars(SMALL), "max_target_tokens": cap}))
    lines = []
    for split in full.datamodule.splits:  # in the order the task built them
        captions = full.datamodule.splits[split].references
        words = [len(caption.split()) for references in captions for caption in references]
        cut = sum(n - cap > 0.1 * n for n in words)
        assert 0 < cut < len(words)  # the long list captions are cut, the short ones are not
        lines.append(
            f"task.max_target_tokens={cap} cut more than 10% off {cut} of {len(words)} "
            f"{split} captions ({cut / len(words):.0%})"
        )
    assert task.data_warnings == lines
