"""A fresh run's first state: the model's initial values, overlaid with ``config.init_from``.

The training loop calls `fresh_state` where it would create fresh parameters (never on
resume: a resumed run continues from its own checkpoint). It checks ``config.freeze`` and
the two-phase head against the model's parameters, reads the source (a torchvision or Keras
file through our importers, or another workdir's latest checkpoint), merges it with
`transfer.merge_variables` (a head whose shape no longer fits keeps its fresh values), prints
a one-line summary and writes every tensor's outcome to ``<workdir>/init_from.json``. Every
problem is a one-line `ConfigError` naming ``config.init_from.*`` (or ``config.freeze`` /
``config.transfer.head``), raised before the train step is compiled.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import jax

from vision_jax.errors import ConfigError
from vision_jax.weights.section import TransferSection, parameter_paths
from vision_jax.weights.transfer import MergeReport, merge_variables

REPORT_FILE = "init_from.json"


def fresh_state(exp: Any, rng: jax.Array) -> Any:
    """The state a fresh run of ``exp`` (a `training.loop.Experiment`) starts from."""
    from vision_jax.training import loop

    transfer: TransferSection = exp.run.transfer
    check_regexes(transfer, exp.abstract_state.params, exp.run.model.model_name)
    if not transfer.init_from.path:
        return loop.init_state(exp, rng)
    imported = load_source(transfer, exp.run)
    state = loop.init_state(exp, rng)
    merged, report = merge_variables(state.variables(), imported, transfer.init_from.skip)
    if not report.loaded:
        raise ConfigError(
            f"config.init_from.path={transfer.init_from.path!r} shares no tensor of the same "
            f"path and shape with model {exp.run.model.model_name!r} (it holds e.g. "
            f"{(report.unused or ('nothing',))[0]}); start from weights of the same model")
    state = _with_variables(exp, state, merged)
    if exp.is_main:
        print(f"init_from {transfer.init_from.path}: {report.summary()}", flush=True)
        write_report(exp.workdir, transfer, report)
    return state


def check_regexes(transfer: TransferSection, params: Any, model_name: str) -> None:
    """A ``freeze`` that matches no parameter, or a two-phase head that matches none or
    all, is a typo that would silently train the wrong thing."""
    paths = parameter_paths(params)
    if transfer.freeze and not any(transfer.is_frozen(p) for p in paths):
        raise ConfigError(f"config.freeze={transfer.freeze!r} matches no parameter of model "
                          f"{model_name!r} (its paths look like {paths[0]!r}); fix the regex")
    if transfer.two_phase:
        head = [p for p in paths if not transfer.is_base(p)]
        if not head or len(head) == len(paths):
            raise ConfigError(
                f"config.transfer.head={transfer.phases.head!r} matches "
                f"{'no' if not head else 'every'} parameter of model {model_name!r} (e.g. "
                f"{paths[-1]!r}); the two-phase recipe needs a head and a base")


def load_source(transfer: TransferSection, run: Any) -> dict[str, Any]:
    """The variables at ``config.init_from.path``, as the configured model's family names
    them (torch / keras: converted by our importers with the run's architecture options,
    ``num_classes`` read from the file)."""
    section = transfer.init_from
    path, fmt = os.path.expanduser(section.path), section.source_format
    field = f"config.init_from.path={section.path!r}"
    if not os.path.exists(path):
        raise ConfigError(f"{field} does not exist; give a weights file or a training workdir")
    options = {k: v for k, v in run.model.options if k != "num_classes"}
    try:
        if fmt == "checkpoint":
            return _checkpoint_variables(path, field)
        if os.path.isdir(path):
            raise ConfigError(f"{field} is a directory, but config.init_from.format={fmt!r} "
                              "reads a file; use format='checkpoint' for a workdir")
        from vision_jax import weights

        load = weights.load_torch if fmt == "torch" else weights.load_keras
        return load(path, run.model.model_name, **options)
    except ConfigError as e:  # WeightsError included: its one line, prefixed with the field
        message = str(e)
        raise ConfigError(message if message.startswith("config.init_from")
                          else f"{field} (format {fmt!r}): {message}") from None


def _checkpoint_variables(workdir: str, field: str) -> dict[str, Any]:
    """``{"params", "batch_stats"}`` of the latest checkpoint of another training workdir."""
    from vision_jax.training import loop
    from vision_jax.training.defaults import default_config

    if not os.path.exists(os.path.join(workdir, "config.json")):
        raise ConfigError(f"{field} has no config.json: with format 'checkpoint' it must be "
                          "a vision_jax workdir (or give format 'torch' / 'keras' for a file)")
    config = loop.load_workdir_config(workdir)
    # A workdir written before a field existed lacks it; the defaults are what it ran with.
    for key, value in default_config().items():
        if key not in config:
            config[key] = value
    exp = loop.build_experiment(config, workdir)
    try:
        if exp.checkpointer.latest_step() is None:
            raise ConfigError(f"{field} holds no checkpoint yet; train it first")
        state, _ = exp.checkpointer.restore(exp.abstract_state)
    finally:
        exp.checkpointer.close()
    return jax.device_get(state.variables())


def _with_variables(exp: Any, state: Any, merged: dict[str, Any]) -> Any:
    """``state`` holding ``merged``, each array where the fresh one lives, and an optimiser
    state initialised for those parameters."""
    shardings = jax.tree.map(lambda s: s.sharding, exp.abstract_state)
    params = jax.device_put(merged["params"], shardings.params)
    batch_stats = (jax.device_put(merged["batch_stats"], shardings.batch_stats)
                   if state.batch_stats else state.batch_stats)
    opt_state = jax.jit(exp.tx.init, out_shardings=shardings.opt_state)(params)
    return state.replace(params=params, batch_stats=batch_stats, opt_state=opt_state)


def write_report(workdir: str, transfer: TransferSection, report: MergeReport) -> None:
    """``init_from.json``: the source, and every tensor by what happened to it."""
    record = {"path": transfer.init_from.path, "format": transfer.init_from.source_format,
              "skip": transfer.init_from.skip, **dataclasses.asdict(report)}
    with open(os.path.join(workdir, REPORT_FILE), "w") as f:
        json.dump(record, f, indent=2)
        f.write("\n")

