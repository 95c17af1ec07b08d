"""Training images/s end to end, for each kernel choice, with PyTorch side by side.

    python -m benchmarks.train_throughput --config configs/mnist_cnn.py --config.batch_size=128
    python -m benchmarks.train_throughput --config configs/cifar10_resnet18.py \\
        --config.dataset=builtin:digits --config.image_channels=3 --config.batch_size=64
    python -m benchmarks.train_throughput --config configs/mnist_cnn.py --quick   # CI smoke

For each kernel choice (``conv_impl:pool_impl``, default ``lax:lax`` — XLA's own
``conv_general_dilated`` and ``reduce_window``, the baseline — then ``auto:auto``, the
toolkit's default, then single-kernel swaps), it builds the experiment the config describes,
exactly as ``vision_jax.train`` does (model, task loss, optimizer, shardings, donated state),
and times the jitted train step (forward + backward + optimizer update) on one real training
batch kept on the device. Compilation and two warm-up steps are excluded. The choices are
timed in interleaved rounds (round 1: every choice, round 2: every choice, ...) so that a
change in machine load hits all of them alike; the figure is the median round.

When PyTorch is installed (never a dependency: ``pip install -e '.[peer]'`` to compare), the same
model (``benchmarks.torch_twins``: same layers, widths and parameter count) trains in eager
mode in the same rounds on the same batch, with the config's optimizer family.

Every JAX step includes the on-device augmentation and normalisation of `config.augment`
(the batch arrives as uint8, as the pipeline gives it). Also measured, once each: the input
pipeline alone (``make_train_iterator``: reading, decoding, resizing and batching uint8
images, images/s) and the ``auto:auto`` step fed by that pipeline — what
``vision_jax.train`` actually runs.

Writes ``<out>/train_throughput_<model>_<backend>.{json,md}``: records in the DESIGN.md
schema (``suite="train_throughput"``, ``op`` = model, ``impl`` = the choice, ``pass`` =
``fwd+bwd``, ``ratio_vs_lax`` = speed-up over ``lax:lax``), plus images/s per row.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import ml_collections
import numpy as np
from absl import app, flags
from ml_collections import config_flags

from benchmarks.records import make_record, markdown_table
from benchmarks.timing import device_info

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Training config, as for vision_jax.train (configs/x.py[:arg]).",
    lock_config=True)
_CHOICES = flags.DEFINE_list(
    "choices", ["lax:lax", "auto:auto", "im2col:auto", "winograd:auto", "lax:auto"],
    "Kernel choices conv_impl:pool_impl; the first is the baseline of ratio_vs_lax.")
_STEPS = flags.DEFINE_integer("steps", 10, "Train steps per timed round.")
_ROUNDS = flags.DEFINE_integer("rounds", 7, "Interleaved rounds; the median round is reported.")
_TORCH = flags.DEFINE_boolean("torch", True, "Time the PyTorch twin too when torch is installed.")
_QUICK = flags.DEFINE_boolean("quick", False, "CI smoke: lax:lax and auto:auto, 2 rounds of 2 "
                              "steps, a batch of at most 32; writes nothing unless --out is set.")
_OUT = flags.DEFINE_string("out", "benchmarks/results", "Directory for the JSON and markdown.")
flags.mark_flag_as_required("config")

PYTORCH = "pytorch-eager"
DATA_FED = "auto:auto + input pipeline"


@dataclasses.dataclass
class Contender:
    """One thing timed per round: ``run(steps)`` trains ``steps`` steps and waits for them."""

    name: str
    run: Callable[[int], None]
    compile_s: float = 0.0
    round_s: list[float] = dataclasses.field(default_factory=list)


def _with_kernels(config: ml_collections.ConfigDict, choice: str) -> ml_collections.ConfigDict:
    conv_impl, sep, pool_impl = choice.partition(":")
    if not sep or not conv_impl or not pool_impl:
        raise app.UsageError(f"--choices: {choice!r} is not conv_impl:pool_impl "
                             "(for example auto:auto or lax:lax)")
    config = ml_collections.ConfigDict(config.to_dict())
    config.model.conv_impl, config.model.pool_impl = conv_impl, pool_impl
    return config


def _train_runner(exp, seed: int, next_batch: Callable[[], dict]) -> Callable[[int], None]:
    """``run(steps)``: that many train steps of `exp` from fresh parameters kept between
    calls, each on ``next_batch()``, waited for at the end."""
    from vision_jax.training import loop

    rng = jax.random.key(0)
    holder = {"state": loop.init_state(exp, jax.random.key(seed))}

    def run(steps: int) -> None:
        state = holder["state"]
        for _ in range(steps):
            state, sums = exp.train_step(state, next_batch(), rng)
        jax.block_until_ready((state, sums))
        holder["state"] = state

    return run


def _jax_contender(config: ml_collections.ConfigDict, choice: str, local_batch: dict,
                   workdir: str) -> Contender:
    from vision_jax.training import loop

    exp = loop.build_experiment(_with_kernels(config, choice), workdir)
    batch = exp.global_batch(local_batch)
    run = _train_runner(exp, config.seed, lambda: batch)
    start = time.perf_counter()
    run(1)  # compiles
    compile_s = time.perf_counter() - start
    run(2)  # warm-up
    return Contender(choice, run, compile_s)


def _data_fed_contender(config: ml_collections.ConfigDict, workdir: str) -> Contender:
    """The auto:auto step fed by the real input pipeline, as vision_jax.train runs it."""
    from vision_jax.training import loop

    exp = loop.build_experiment(_with_kernels(config, "auto:auto"), workdir)
    batches = _train_batches(exp.config)
    run = _train_runner(exp, config.seed, lambda: exp.global_batch(next(batches)))
    run(3)
    return Contender(DATA_FED, run)


def _torch_contender(config: ml_collections.ConfigDict, local_batch: dict) -> Contender | None:
    try:
        import torch
        import torch.nn.functional as F  # noqa: N812 - PyTorch's own convention
    except ImportError:
        print("PyTorch is not installed: no side-by-side baseline (pip install -e '.[peer]')")
        return None
    from benchmarks import torch_twins

    if not torch_twins.has_twin(config.model_name):
        print(f"no PyTorch twin for {config.model_name!r}: no side-by-side baseline")
        return None
    from vision_jax.augment import normalize

    pixels = normalize(np.asarray(local_batch["image"]), config.normalize.mean,
                       config.normalize.std)
    images = torch.from_numpy(np.ascontiguousarray(pixels.transpose(0, 3, 1, 2)))
    labels = torch.from_numpy(np.asarray(local_batch["label"]).astype(np.int64))
    torch.manual_seed(0)
    model = torch_twins.build_twin(config, images.shape[1])
    model.train()
    optimizer = torch_twins.build_optimizer(config, model.parameters())
    smoothing = float(config.label_smoothing)

    def run(steps: int) -> None:
        for _ in range(steps):
            optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(images), labels, label_smoothing=smoothing)
            loss.backward()
            optimizer.step()

    start = time.perf_counter()
    run(1)
    compile_s = time.perf_counter() - start
    run(2)
    return Contender(PYTORCH, run, compile_s)


def _train_batches(config: ml_collections.ConfigDict):
    """This process's training iterator, built as `vision_jax.train` builds it."""
    from vision_jax import data as data_lib
    from vision_jax.training import loop
    from vision_jax.training.run_config import parse_config

    run = parse_config(config)
    task = loop.create_task(run, data_lib.validate_data_config(run.data, jax.process_count()))
    return data_lib.make_train_iterator(
        run.data, process_index=jax.process_index(), process_count=jax.process_count(),
        spec=task.example_spec())


def _input_pipeline_images_per_s(config: ml_collections.ConfigDict, batches: int) -> float:
    iterator = _train_batches(config)
    next(iterator)  # opens the source
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * config.batch_size / (time.perf_counter() - start)


def _first_batch(config: ml_collections.ConfigDict) -> dict:
    return {k: np.asarray(v) for k, v in next(_train_batches(config)).items()}


def train_flops_per_image(config: ml_collections.ConfigDict, channels: int) -> float:
    """Analytic FLOPs of one training image: forward MACs x 2, times 3 for forward+backward
    (the input and the weight gradients each cost one forward)."""
    from vision_jax.summary import summarize

    summary = summarize(config.model_name, config.num_classes, config.image_size, channels,
                        **config.model.to_dict())
    return 3.0 * summary["flops"]


def time_rounds(contenders: Sequence[Contender], steps: int, rounds: int) -> None:
    for _ in range(rounds):
        for contender in contenders:
            start = time.perf_counter()
            contender.run(steps)
            contender.round_s.append(time.perf_counter() - start)


def run(config: ml_collections.ConfigDict, choices: Sequence[str], steps: int, rounds: int,
        with_torch: bool) -> dict[str, Any]:
    from vision_jax.training import validate

    validate.validate_config(config)
    local_batch = _first_batch(config)
    channels = int(local_batch["image"].shape[-1])
    with tempfile.TemporaryDirectory() as workdir:
        contenders, skipped = [], {}
        for index, choice in enumerate(choices):
            try:
                contenders.append(_jax_contender(config, choice, local_batch,
                                                 f"{workdir}/{index}"))
            except validate.ConfigError as e:
                if index == 0:  # the baseline every ratio is taken against
                    raise
                skipped[choice] = str(e)
                print(f"skipped {choice}: {e}")
        torch_contender = _torch_contender(config, local_batch) if with_torch else None
        if torch_contender is not None:
            contenders.append(torch_contender)
        contenders.append(_data_fed_contender(config, f"{workdir}/data"))
        time_rounds(contenders, steps, rounds)
        pipeline = _input_pipeline_images_per_s(config, max(steps, 5))
    result = _report(config, contenders, steps, channels, pipeline)
    result["skipped"] = skipped
    return result


def _report(config: ml_collections.ConfigDict, contenders: Sequence[Contender], steps: int,
            channels: int, pipeline_images_per_s: float) -> dict[str, Any]:
    info = device_info()
    batch, size = config.batch_size, config.image_size
    flops_per_step = train_flops_per_image(config, channels) * batch
    step_s = {c.name: statistics.median(c.round_s) / steps for c in contenders}
    baseline = step_s[contenders[0].name]
    shape = f"batch={batch} image={size}x{size}x{channels}"
    records, rows = [], []
    for contender in contenders:
        median_s = step_s[contender.name]
        records.append(make_record(
            suite="train_throughput", op=config.model_name, impl=contender.name, shape=shape,
            dtype=config.dtype, **{"pass": "fwd+bwd"}, median_s=median_s,
            gflops=flops_per_step / median_s / 1e9, ratio_vs_lax=baseline / median_s, **info))
        rows.append({"choice": contender.name, "images/s": batch / median_s,
                     "step ms": 1e3 * median_s, "vs lax:lax": baseline / median_s,
                     "GFLOP/s": flops_per_step / median_s / 1e9,
                     "compile s": contender.compile_s,
                     "rounds img/s (min-max)": "{:.0f}-{:.0f}".format(
                         *(batch * steps / t for t in (max(contender.round_s),
                                                       min(contender.round_s))))})
    return {"suite": "train_throughput",
            "meta": {**info, "model": config.model_name, "dataset": config.dataset,
                     "batch_size": batch, "image_shape": [size, size, channels],
                     "optimizer": config.optimizer.name, "steps_per_round": steps,
                     "rounds": len(contenders[0].round_s),
                     "train_gflop_per_image": flops_per_step / batch / 1e9,
                     "input_pipeline_images_per_s": pipeline_images_per_s,
                     "torch_version": _torch_version()},
            "records": records, "rows": rows}


def _torch_version() -> str | None:
    try:
        import torch
    except ImportError:
        return None
    return torch.__version__


def markdown(result: dict[str, Any]) -> str:
    meta = result["meta"]
    columns = ["choice", "images/s", "step ms", "vs lax:lax", "GFLOP/s", "compile s",
               "rounds img/s (min-max)"]
    head = (f"# Training throughput: {meta['model']}, batch {meta['batch_size']}, "
            f"{'x'.join(map(str, meta['image_shape']))}, {meta['optimizer']}\n\n"
            f"backend {meta['backend']} ({meta['device_kind']}), JAX {meta['jax_version']}, "
            f"PyTorch {meta['torch_version'] or 'not installed'}; median of {meta['rounds']} "
            f"interleaved rounds of {meta['steps_per_round']} steps on one real batch. "
            f"Input pipeline alone: {meta['input_pipeline_images_per_s']:.0f} images/s.\n\n")
    return head + markdown_table(result["rows"], columns)


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    from vision_jax.cli import quiet_library_logs, user_errors_exit

    quiet_library_logs()
    config = _CONFIG.value
    choices, steps, rounds = list(_CHOICES.value), _STEPS.value, _ROUNDS.value
    if _QUICK.value:
        choices, steps, rounds = ["lax:lax", "auto:auto"], 2, 2
        config = ml_collections.ConfigDict(config.to_dict())
        config.batch_size = min(config.batch_size, 32)
    if steps < 1 or rounds < 1:
        raise app.UsageError("--steps and --rounds must be >= 1")
    with user_errors_exit():
        result = run(config, choices, steps, rounds, _TORCH.value)
    text = markdown(result)
    print(text)
    if not _QUICK.value or flags.FLAGS["out"].present:
        out = Path(_OUT.value)
        out.mkdir(parents=True, exist_ok=True)
        stem = out / f"train_throughput_{config.model_name}_{result['meta']['backend']}"
        stem.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
        stem.with_suffix(".md").write_text(text)
        print(f"wrote {stem}.json and .md")


if __name__ == "__main__":
    from vision_jax.cli import parse_flags

    app.run(main, flags_parser=parse_flags)
