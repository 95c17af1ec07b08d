"""Re-evaluate a run's latest checkpoint.

    python -m vision_jax.evaluate --workdir runs/mnist [--split test]

Reads the config the run wrote (`config.json`), restores the latest checkpoint,
prints the metrics as JSON (keys ``<split>/<metric>``, the split as given) and rewrites
the task's reports into the workdir. An unknown ``--split`` is a one-line error listing the
dataset's splits. A TFDS slice such as ``test[:100]`` is evaluated as given; its report
files are named without brackets, colons or percent signs (`file_prefix`:
``test[:100]`` -> ``test_0-100_classification_report.txt``).
"""

from __future__ import annotations

import json
import re
import sys

from absl import app, flags


def _define_flags() -> None:
    # Defined only when this module is the program, so that importing `file_prefix` (tests,
    # other tools) registers no global flags.
    flags.DEFINE_string("workdir", None, "A directory a training run wrote.")
    flags.DEFINE_string("split", None, "Split to evaluate (default: the config's eval_split); "
                        "a TFDS slice such as 'test[:100]' works too.")
    flags.mark_flags_as_required(["workdir"])


_SLICE = re.compile(r"^(?P<name>[\w-]+)\[(?P<start>[^:\]]*):(?P<stop>[^:\]]*)\]$")


def file_prefix(split: str) -> str:
    """A split as a file-name prefix: ``test`` stays, a slice ``name[a:b]`` becomes
    ``name_a-b`` (an open start is 0, an open end ``end``, ``%`` is ``pct``), and any other
    character outside letters, digits, ``-`` and ``.`` becomes ``_`` (``train+test`` ->
    ``train_test``)."""
    parts = []
    for part in split.split("+"):
        part = part.strip()
        match = _SLICE.match(part)
        if match:
            start, stop = (match["start"] or "0").strip(), (match["stop"] or "end").strip()
            part = f"{match['name']}_{start}-{stop}".replace("%", "pct")
        parts.append(part)
    return re.sub(r"[^\w.-]+", "_", "_".join(parts)).strip("_") or "split"


def check_split(config, split: str) -> None:
    """A one-line ConfigError naming ``--split`` and the dataset's splits when ``split`` is
    not one of them (slices are checked by name), before the model is built."""
    from vision_jax import data as data_lib
    from vision_jax.errors import ConfigError

    try:
        data_lib.open_splits(config.dataset, {"--split": split}, config.get("data_dir") or None)
    except ValueError as e:
        raise ConfigError(str(e)) from None


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    from vision_jax.cli import start_process

    start_process()
    import jax

    from vision_jax.cli import user_errors_exit
    from vision_jax.training import loop

    workdir, wanted = flags.FLAGS.workdir, flags.FLAGS.split
    with user_errors_exit():
        if wanted is not None:
            check_split(loop.load_workdir_config(workdir), wanted)
        exp, state = loop.restore_experiment(workdir)
        split = wanted or exp.run.data.eval_split
        results = loop.evaluate(exp, state, split)
    metrics = {"step": int(jax.device_get(state.step)),
               **{f"{split}/{k}": v for k, v in exp.task.summarize(results).items()}}
    if exp.is_main:
        prefix = file_prefix(split)
        exp.task.write_report(results, exp.workdir, prefix=prefix)
        print(f"reports: {exp.workdir / prefix}_*", file=sys.stderr)
        print(json.dumps(metrics))


if __name__ == "__main__":
    from vision_jax.cli import parse_flags

    _define_flags()
    app.run(main, flags_parser=parse_flags)
