"""Where metrics go: `metrics.jsonl`, TensorBoard events, and the console.

Only the main process writes; the others get a writer that does nothing, so
callers never need to check the process index themselves. The workdir is an
`epath.Path` (local or `gs://`): tensorboardX writes `gs://` event files itself
(through google-cloud-storage, uploading the buffered file on each flush).
"""

from __future__ import annotations

import json
import os
import time

from absl import logging as absl_logging

from vision_jax import paths

METRICS_FILE = "metrics.jsonl"


def read_metrics(workdir: paths.PathLike) -> list[dict]:
    path = paths.as_path(workdir) / METRICS_FILE
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class MetricWriter:
    def __init__(self, workdir: paths.PathLike, enabled: bool = True):
        self.workdir = paths.as_path(workdir)
        self.enabled = enabled
        self.path = self.workdir / METRICS_FILE
        self._tb = None
        if enabled:
            from tensorboardX import SummaryWriter

            self._tb = SummaryWriter(os.fspath(self.workdir / "tensorboard"))

    def truncate_after(self, step: int) -> None:
        """Drops records newer than `step`: after a resume those steps are re-run
        and logged again, so the file reads as if nothing had been interrupted."""
        if not self.enabled or not self.path.exists():
            return
        kept = [r for r in read_metrics(self.workdir) if r["step"] <= step]
        paths.write_text_atomic(self.path, "".join(json.dumps(r) + "\n" for r in kept))

    def write(self, step: int, metrics: dict[str, float]) -> None:
        if not self.enabled:
            return
        record = {"step": int(step), **{k: float(v) for k, v in metrics.items()}}
        paths.append_text(self.path, json.dumps(record) + "\n")
        for key, value in metrics.items():
            self._tb.add_scalar(key, float(value), int(step))
        self._tb.flush()

    def write_perf(self, step: int, metrics: dict[str, float]) -> None:
        """TensorBoard only: timings differ run to run, and metrics.jsonl must not."""
        if self._tb is not None:
            for key, value in metrics.items():
                self._tb.add_scalar(key, float(value), int(step))

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


class Progress:
    """A progress bar with images/s and ETA (tqdm), or periodic log lines when
    there is no terminal or the bar is turned off."""

    def __init__(self, total: int, initial: int, batch_size: int, enabled: bool, show_bar: bool):
        self.batch_size = batch_size
        self.enabled = enabled
        self._bar = None
        self._last_time = time.perf_counter()
        self._last_step = initial
        if enabled and show_bar:
            from tqdm import tqdm

            self._bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True,
                             smoothing=0.1)

    def update(self, step: int, metrics: dict[str, float] | None = None) -> float:
        """Advances to `step`; returns images/s since the previous call."""
        now = time.perf_counter()
        rate = (step - self._last_step) * self.batch_size / max(now - self._last_time, 1e-9)
        self._last_time, self._last_step = now, step
        if not self.enabled:
            return rate
        if self._bar is not None:
            self._bar.update(step - self._bar.n)
            postfix = {"img/s": f"{rate:,.0f}"}
            for key, value in (metrics or {}).items():
                postfix[key.split("/")[-1]] = f"{value:.4g}"
            self._bar.set_postfix(postfix, refresh=False)
        elif metrics is not None:
            shown = ", ".join(f"{k}={v:.4g}" for k, v in metrics.items())
            absl_logging.info("step %d: %s, %.0f img/s", step, shown, rate)
        return rate

    def write(self, message: str) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.write(message)
        else:
            absl_logging.info("%s", message)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
