"""Bad input through the real command line: non-zero exit, one clear message naming the key,
the bad value and what is allowed, no traceback."""

import pytest

SCHED = "OPTIMIZER.param_schedulers.lr"

BAD_INPUTS = [
    # (overrides, fragments the message must contain)
    (["OPTIMIZER.nane=sgd"], ["OPTIMIZER.nane", "unknown key", "did you mean OPTIMIZER.name", "weight_decay"]),
    (["OPTIMIZER.momentum=abc"], ["OPTIMIZER.momentum", "'abc'", "a number >= 0 and < 1"]),
    (["OPTIMIZER.name=sgdd"], ["OPTIMIZER.name", "'sgdd'", "adam, adamw, lars, rmsprop, sgd"]),
    ([f"{SCHED}.update_interval=hourly"], [f"{SCHED}.update_interval", "'hourly'", "step or epoch"]),
    ([f"{SCHED}.auto_lr_scaling.scaling_type=cubic"], [f"{SCHED}.auto_lr_scaling.scaling_type", "'cubic'", "linear, sqrt"]),
    ([f"{SCHED}.schedulers.1.start_value=-0.5"], [f"{SCHED}.schedulers[1].start_value", "-0.5", "a value >= 0"]),
    (["OPTIMIZER.weight_decay=-1e-4"], ["OPTIMIZER.weight_decay", "-0.0001", "a number >= 0"]),
    (["OPTIMIZER.momentum=1.0"], ["OPTIMIZER.momentum", "1.0", "< 1"]),
    (["OPTIMIZER.momentum=-0.1"], ["OPTIMIZER.momentum", "-0.1", ">= 0"]),
    (["config=pretrain/simclr/no_such_experiment"], ["no_such_experiment", "pretrain/simclr/simclr_digits"]),
    (["engine_name=fly"], ["engine_name", "'fly'", "train, explain"]),
    (["OPTIMIZER.nesterov=maybe"], ["OPTIMIZER.nesterov", "'maybe'", "true or false"]),
    (["OPTIMIZER.num_epochs=0"], ["OPTIMIZER.num_epochs", "0", "an integer > 0"]),
    (["DATA.TRAIN.BATCHSIZE_PER_REPLICA=2.5"], ["DATA.TRAIN.BATCHSIZE_PER_REPLICA", "2.5", "an integer"]),
    ([f"{SCHED}.name=cosinus"], [f"{SCHED}.name", "'cosinus'", "cosine", "composite"]),
    ([f"{SCHED}.lengths=[0.5,0.6]"], [f"{SCHED}.lengths", "summing to 1"]),
    ([f"{SCHED}.interval_scaling=[rescaled,stretched]"], [f"{SCHED}.interval_scaling", "rescaled or fixed"]),
    (["OPTIMIZER.larc_config.trust_coefficient=-1"], ["OPTIMIZER.larc_config.trust_coefficient", ">= 0"]),
    (["LOSS.name=triplet"], ["LOSS.name", "'triplet'", "simclr_info_nce_loss"]),
    (["MODEL.TRUNK.RESNETS.DEPTH=42"], ["MODEL.TRUNK.RESNETS.DEPTH", "42", "18, 34, 50, 101"]),
    (["+OPTIMIZER.typo_key=1"], ["OPTIMIZER.typo_key", "unknown key"]),
    (['MODEL.HEAD.PARAMS=[["mlpp",{dims:[128,64]}]]'], ["MODEL.HEAD.PARAMS[0][0]", "'mlpp'", "mlp"]),
]


@pytest.mark.parametrize("overrides,fragments", BAD_INPUTS, ids=[" ".join(o) for o, _ in BAD_INPUTS])
def test_bad_input_is_reported_clearly(cli, overrides, fragments):
    result = cli(*overrides)
    assert result.returncode != 0
    message = result.stderr + result.stdout
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in:\n{message}"
    assert "Traceback" not in message


def test_full_error_shows_traceback(cli):
    result = cli("OPTIMIZER.momentum=abc", env_extra={"HYDRA_FULL_ERROR": "1"})
    assert result.returncode != 0
    assert "Traceback" in result.stderr and "OPTIMIZER.momentum" in result.stderr
