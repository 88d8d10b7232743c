"""The terminal view of the trainers' `Progress` events (tqdm bars on stderr, one line
per epoch, every note), shared by the CLI's `train` commands and `wordspace.train`."""
from __future__ import annotations

import sys
from typing import Any

from tqdm import tqdm

from embeddings.training import Progress

#: Bar titles of the long steps trainers report.
STEPS = {"prepare": "preparing the corpus", "count": "counting co-occurrences", "train": "training",
         "pool": "pooling contexts"}


def epoch_line(event: Progress) -> str:
    """`epoch 3/5: loss 1.23 (-4.0% vs epoch 2), held-out ppl 41.2, 812,000 words/s, 2.1 s`."""
    text = f"epoch {event.epoch}/{event.epochs}"
    if event.loss is not None:
        text += f": loss {event.loss:.6g}"
    change = event.metrics.get("loss_change")
    if change is not None:
        text += f" ({change:+.1%} vs epoch {event.epoch - 1})"
    for label, value in event.metrics.items():
        if label != "loss_change" and value is not None:
            text += f", {label} {value:.4g}" if isinstance(value, float) else f", {label} {value}"
    if event.rate is not None:
        text += f", {event.rate:,.0f} {event.unit}/s"
    if event.seconds is not None:
        text += f", {event.seconds:.1f} s"
    return text


class ProgressPrinter:
    """A `progress` callback: a tqdm bar per long step, a line per epoch, every note (even when quiet)."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self.bar: Any = None
        self.stage: str | None = None

    def __call__(self, event: Progress) -> None:
        if event.stage == "note":
            self.write(event.message)
        elif event.stage == "epoch":
            if not self.quiet:
                self.write(epoch_line(event))
        elif event.done is not None and not self.quiet:
            self._advance(event)

    def _advance(self, event: Progress) -> None:
        desc = STEPS.get(event.stage, event.stage)
        if event.epoch is not None and event.epochs is not None:
            desc += f", epoch {event.epoch}/{event.epochs}"
        if self.bar is None or self.stage != event.stage or self.bar.total != event.total or event.done < self.bar.n:
            self.close()
            self.bar = tqdm(total=event.total, unit=event.unit, unit_scale=True, file=sys.stderr,
                            dynamic_ncols=True, leave=False, desc=desc)
            self.stage = event.stage
        self.bar.set_description(desc, refresh=False)
        if event.loss is not None:
            self.bar.set_postfix_str(f"loss {event.loss:.4g}", refresh=False)
        self.bar.update(event.done - self.bar.n)

    def write(self, message: str) -> None:
        if self.bar is not None:
            self.bar.write(message, file=sys.stderr)
        else:
            print(message, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
            self.stage = None
