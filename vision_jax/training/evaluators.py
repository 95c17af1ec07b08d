"""Evaluators: which split is evaluated, how often, and which reports it writes.

They are built once from the config and held by the loop. An evaluator is due every
`every_steps` steps and always at the last step; the last periodic evaluation is the final
one, so its accumulator feeds the end-of-run reports and nothing is evaluated twice.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from absl import logging


@dataclasses.dataclass
class Evaluator:
    """One split, evaluated every `every_steps` steps and at the last step.

    prefix: the metrics' key prefix (``eval/accuracy``) and the reports' file prefix.
    reports: whether the task's end-of-run reports are written from the final evaluation.
    """

    split: str
    every_steps: int
    prefix: str = "eval"
    reports: bool = True
    last_step: int | None = None  # the step of the latest evaluation
    last_result: Any = None  # its accumulator

    def due(self, step: int, total_steps: int) -> bool:
        return step % self.every_steps == 0 or step == total_steps

    def run(self, step: int, evaluate: Callable[[str], Any]) -> Any:
        """`evaluate(split)` at `step`, remembered as the latest result."""
        self.last_step, self.last_result = step, evaluate(self.split)
        logging.info("evaluated split %r at step %d", self.split, step)
        return self.last_result

    def final(self, step: int, evaluate: Callable[[str], Any]) -> Any:
        """The evaluation of the state at `step`: the one already run there, if any."""
        if self.last_step != step:
            return self.run(step, evaluate)
        return self.last_result


def build_evaluators(eval_split: str, eval_every_steps: int,
                     steps_per_epoch: int) -> list[Evaluator]:
    """The run's evaluators: today the config's `eval_split`, every `eval_every_steps` steps
    (0 = once per epoch), with the task's reports at the end."""
    return [Evaluator(split=eval_split, every_steps=eval_every_steps or steps_per_epoch)]
