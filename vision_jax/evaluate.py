"""Re-evaluate a run's latest checkpoint.

    python -m vision_jax.evaluate --workdir runs/mnist [--split test]

Reads the config the run wrote (`config.json`), restores the latest checkpoint,
prints the metrics as JSON and rewrites the task's reports.
"""

from __future__ import annotations

import json

from absl import app, flags

_WORKDIR = flags.DEFINE_string("workdir", None, "A directory a training run wrote.")
_SPLIT = flags.DEFINE_string("split", None, "Split to evaluate (default: the config's eval_split).")
flags.mark_flags_as_required(["workdir"])


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    from vision_jax.cli import start_process

    start_process()
    import jax

    from vision_jax.cli import user_errors_exit
    from vision_jax.training import loop

    with user_errors_exit():
        exp, state = loop.restore_experiment(_WORKDIR.value)
        split = _SPLIT.value or exp.run.data.eval_split
        results = loop.evaluate(exp, state, split)
    metrics = {"step": int(jax.device_get(state.step)),
               **{f"{split}/{k}": v for k, v in exp.task.summarize(results).items()}}
    if exp.is_main:
        exp.task.write_report(results, exp.workdir, prefix=split)
        print(json.dumps(metrics))


if __name__ == "__main__":
    from vision_jax.cli import parse_flags

    app.run(main, flags_parser=parse_flags)
