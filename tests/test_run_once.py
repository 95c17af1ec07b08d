"""The end of a run does nothing twice: the model's init is traced once, the final
evaluation is the last periodic one, and classification (which draws no examples) runs no
prediction. Counted on a real `python -m vision_jax.train` run: JAX_LOG_COMPILES logs every
trace and compilation, and the loop logs each evaluation at INFO."""

from __future__ import annotations

import re

import pytest
from train_cli import run_train

INIT_TRACE = "Finished tracing init_train_state"
EVALUATED = re.compile(r"evaluated split 'test' at step (\d+)")


def _run(workdir, data_dir):
    return run_train(workdir, f"--config.data_dir={data_dir}", "--verbosity=0",
                     env_extra={"JAX_LOG_COMPILES": "1"}).stderr


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, digits_data_dir):
    workdir = tmp_path_factory.mktemp("once")
    return workdir, _run(workdir, digits_data_dir)


def test_model_init_is_traced_once(smoke):
    _, log = smoke
    assert log.count(INIT_TRACE) == 1


def test_the_last_periodic_evaluation_is_the_final_one(smoke):
    workdir, log = smoke
    # eval_every_steps=6 over 12 steps: steps 6 and 12, and nothing again for the reports.
    assert [int(s) for s in EVALUATED.findall(log)] == [6, 12]
    assert (workdir / "eval_classification_report.json").exists()


def test_classification_runs_no_prediction_for_examples(smoke):
    _, log = smoke
    assert "predict_step" not in log and "process_allgather" not in log


def test_rerunning_a_finished_run_evaluates_once_for_its_reports(smoke, digits_data_dir):
    workdir, _ = smoke
    report = workdir / "eval_classification_report.json"
    report.unlink()
    log = _run(workdir, digits_data_dir)
    assert [int(s) for s in EVALUATED.findall(log)] == [12]
    assert log.count(INIT_TRACE) == 1 and report.exists()
