"""Progress output of `fit`: a live bar on a terminal, one line per epoch
otherwise (verbose=2, or when the stream is not a terminal)."""
from __future__ import annotations

import sys
import time
from typing import Optional

BAR_WIDTH = 30
REFRESH_SECONDS = 0.1


def _is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _format_logs(logs: dict) -> str:
    return "".join(f" - {k}: {v:.4f}" for k, v in logs.items() if k != "learning_rate")


def _format_seconds(seconds: float) -> str:
    if seconds >= 3600:
        return f"{int(seconds // 3600)}:{int(seconds % 3600 // 60):02d}:{int(seconds % 60):02d}"
    if seconds >= 60:
        return f"{int(seconds // 60)}:{int(seconds % 60):02d}"
    return f"{seconds:.1f}s" if seconds < 10 else f"{seconds:.0f}s"


class Progress:
    """The printer of `fit` (see nncore.article for the article's): `steps`
    batches per epoch, None when unknown (a stream; then no live bar)."""

    needs_epochs = True     # prints at every epoch's end

    def __init__(self, verbose: int, epochs: int, steps: Optional[int], stream=None):
        self.stream = stream if stream is not None else sys.stdout
        self.live = verbose == 1 and steps is not None and _is_terminal(self.stream)
        self.epochs = epochs
        self.steps = steps

    def epoch_begin(self, epoch: int) -> None:
        self.began = time.perf_counter()
        self.trained = 0.0
        self.last_draw = 0.0
        if self.live:
            self.stream.write(f"Epoch {epoch + 1}/{self.epochs}\n")
            self.stream.flush()

    def _bar(self, done: int) -> str:
        filled = BAR_WIDTH * done // self.steps
        arrow = ">" if filled < BAR_WIDTH else ""
        return "=" * filled + arrow + "." * (BAR_WIDTH - filled - len(arrow))

    def update(self, done: int, samples: int, logs: dict) -> None:
        """Redraw the live bar after `done` batches (`samples` samples)."""
        if not self.live:
            return
        now = time.perf_counter()
        if now - self.last_draw < REFRESH_SECONDS and done < self.steps:
            return
        self.last_draw = now
        elapsed = max(now - self.began, 1e-9)
        eta = elapsed / max(done, 1) * (self.steps - done)
        width = len(str(self.steps))
        self.stream.write(f"\r{done:>{width}}/{self.steps} [{self._bar(done)}] - ETA: "
                          f"{_format_seconds(eta)} - {samples / elapsed:,.0f} samples/s"
                          f"{_format_logs(logs)}\x1b[K")
        self.stream.flush()

    def training_done(self) -> None:
        """Mark the end of the epoch's training steps (validation comes after)."""
        self.trained = time.perf_counter() - self.began

    def epoch_end(self, epoch: int, samples: int, logs: dict, steps: int) -> None:
        """After the epoch's `steps` batches of `samples` samples."""
        elapsed = max(getattr(self, "trained", 0.0) or time.perf_counter() - self.began, 1e-9)
        rate = f"{_format_seconds(elapsed)} - {samples / elapsed:,.0f} samples/s"
        if self.live:
            line = f"\r{self.steps}/{self.steps} [{self._bar(self.steps)}] - {rate}"
            end = "\x1b[K\n"
        else:
            line = f"Epoch {epoch + 1}/{self.epochs} - {steps} steps - {rate}"
            end = "\n"
        self.stream.write(line + _format_logs(logs) + end)
        self.stream.flush()
