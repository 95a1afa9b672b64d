"""Bad input through the command line's own entry point (in this process, for speed; the last
two tests run real processes): non-zero exit, one clear message naming the key, the bad value
and what is allowed, no traceback."""

import pytest

SCHED = "OPTIMIZER.param_schedulers.lr"

BAD_INPUTS = [
    # (overrides, fragments the message must contain)
    (["OPTIMIZER.nane=sgd"], ["OPTIMIZER.nane", "unknown key", "did you mean OPTIMIZER.name", "weight_decay"]),
    (["OPTIMIZER.momentum=abc"], ["OPTIMIZER.momentum", "'abc'", "a number >= 0 and < 1"]),
    (["OPTIMIZER.name=sgdd"], ["OPTIMIZER.name", "'sgdd'", "adamw", "lars", "sgd"]),
    ([f"{SCHED}.update_interval=hourly"], [f"{SCHED}.update_interval", "'hourly'", "step", "epoch"]),
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
    # list lengths
    (["OPTIMIZER.name=adam", "OPTIMIZER.betas=[0.9]"], ["OPTIMIZER.betas", "[0.9]", "a list of 2 values"]),
    (["DATA.TRAIN.TRANSFORMS.CROP_SCALE=[0.5]"], ["DATA.TRAIN.TRANSFORMS.CROP_SCALE", "[0.5]", "a list of 2 values"]),
    (["DATA.TRAIN.TRANSFORMS.BLUR_SIGMA=[0.1,1,2]"], ["DATA.TRAIN.TRANSFORMS.BLUR_SIGMA", "a list of 2 values"]),
    (["DATA.TEST.TRANSFORMS.MEAN=[0.1,0.2]"], ["DATA.TEST.TRANSFORMS.MEAN", "[0.1, 0.2]", "1 value or 1"]),
    (["DATA.TRAIN.DATA_SOURCES=[digits,synthetic]"], ["DATA.TRAIN.DATA_SOURCES", "['digits', 'synthetic']",
                                                      "exactly one source per split"]),
    # finiteness of every float
    ([f"{SCHED}.name=linear", f"{SCHED}.start_value=inf"], [f"{SCHED}.start_value", "inf", "a finite number"]),
    (["OPTIMIZER.weight_decay=nan"], ["OPTIMIZER.weight_decay", "nan", "a finite number >= 0"]),
    (["DATA.TRAIN.TRANSFORMS.MEAN=[inf]"], ["DATA.TRAIN.TRANSFORMS.MEAN[0]", "inf", "a finite number"]),
    (["MODEL.GRAD_CLIP.MAX_NORM=-inf"], ["MODEL.GRAD_CLIP.MAX_NORM", "-inf", "a finite number > 0"]),
    # ordered ranges, bounds and choices elsewhere in the schema
    (["DATA.TRAIN.TRANSFORMS.CROP_SCALE=[0.9,0.5]"], ["DATA.TRAIN.TRANSFORMS.CROP_SCALE", "[0.9, 0.5]",
                                                      "low <= high"]),
    (["DATA.TRAIN.TRANSFORMS.HFLIP_P=1.5"], ["DATA.TRAIN.TRANSFORMS.HFLIP_P", "1.5", "<= 1"]),
    (["DISTRIBUTED.BACKEND=mpi"], ["DISTRIBUTED.BACKEND", "'mpi'", "gloo, nccl"]),
    (["MACHINE.DEVICE=tpu"], ["MACHINE.DEVICE", "'tpu'", "cpu, gpu"]),
    (["CHECKPOINT.MAX_KEEP=-1"], ["CHECKPOINT.MAX_KEEP", "-1", ">= 0"]),
    (["HOOKS.LOG_FREQUENCY=0"], ["HOOKS.LOG_FREQUENCY", "0", "an integer > 0"]),
    (["MODEL.AMP_PARAMS.LOSS_SCALE=-8"], ["MODEL.AMP_PARAMS.LOSS_SCALE", "-8", "> 0"]),
    (["HOOKS.ONLINE_LINEAR_PROBE.OPTIMIZER.momentum=2"], ["HOOKS.ONLINE_LINEAR_PROBE.OPTIMIZER.momentum", "2",
                                                          "< 1"]),
    (["OPTIMIZER.non_regularized_parameters=5"], ["OPTIMIZER.non_regularized_parameters", "5",
                                                  "a list, each a string"]),
    (["OPTIMIZER=5"], ["OPTIMIZER", "5", "a mapping with keys name"]),
    (["config=pretrain/moco/moco_digits", "LOSS.moco_loss.momentum=0.999"],
     ["LOSS.moco_loss.momentum: got 0.999", "a schedule section",
      "LOSS.moco_loss.momentum={name:constant,value:0.999}"]),
    ([f"{SCHED}.auto_lr_scaling.base_lr_batch_size=0"], [f"{SCHED}.auto_lr_scaling.base_lr_batch_size", "0",
                                                         "an integer > 0"]),
    (["DATA.TRAIN.BATCHSIZE_PER_REPLICA=5000"], ["DATA.TRAIN.BATCHSIZE_PER_REPLICA", "5000", "at most 1437"]),
    (["OPTIMIZER.accumulation_steps=100", "engine_name=explain"], ["OPTIMIZER.accumulation_steps", "100",
                                                                   "at most 5"]),
    (["OPTIMIZER.name=lbfgs"], ["OPTIMIZER.name", "'lbfgs'", "steps once per batch", "closure"]),
    (["OPTIMIZER.param_group_constructor=nope"], ["OPTIMIZER.param_group_constructor", "'nope'", "default",
                                                  "lr_decay"]),
    (["OPTIMIZER.name=adagrad", "OPTIMIZER.param_schedulers.momentum.name=constant",
      "OPTIMIZER.param_schedulers.momentum.value=0.9"],
     ["OPTIMIZER.param_schedulers.momentum.name", "'constant'", "null for an optimizer without momentum"]),
    (["HOOKS.ONLINE_LINEAR_PROBE.OPTIMIZER.name=foo"], ["HOOKS.ONLINE_LINEAR_PROBE.OPTIMIZER.name", "'foo'", "sgd"]),
    # paths that must exist or be writable
    (["CHECKPOINT.DIR=/etc/hostname/checkpoints"], ["CHECKPOINT.DIR", "'/etc/hostname/checkpoints'",
                                                    "a folder this process can create and write", "is a file"]),
    (["MODEL.WEIGHTS_INIT.PARAMS_FILE=/no/such/file.torch"], ["MODEL.WEIGHTS_INIT.PARAMS_FILE",
                                                              "'/no/such/file.torch'", "an existing weights file"]),
    (["DATA.TRAIN.DATA_SOURCES=[disk_folder]"], ["DATA.TRAIN.DATA_PATHS", "[]", "[a folder] for disk_folder"]),
    (["DATA.TRAIN.DATA_SOURCES=[disk_folder]", "DATA.TRAIN.DATA_PATHS=[/no/such/folder]"],
     ["DATA.TRAIN.DATA_PATHS[0]", "'/no/such/folder'", "an existing folder"]),
    (["OPTIMIZER.non_regularized_parameters=[" + ",".join(["a_long_parameter_name_fragment"] * 10) + "]"],
     ["hydra.run.dir", "folder names fit in 255 bytes", "set hydra.run.dir"]),
    # mutually exclusive options and impossible models
    (["OPTIMIZER.name=lars", "OPTIMIZER.use_larc=true"], ["OPTIMIZER.use_larc", "True", "false with OPTIMIZER.name=lars"]),
    (["OPTIMIZER.construct_single_param_group_only=true", "OPTIMIZER.head_optimizer_params.use_different_lr=true"],
     ["OPTIMIZER.head_optimizer_params.use_different_lr", "True", "construct_single_param_group_only"]),
    (["MODEL.FEATURE_EVAL_SETTINGS.FREEZE_TRUNK=true", "MODEL.HEAD.PARAMS=[]", "engine_name=explain"],
     ["MODEL.FEATURE_EVAL_SETTINGS.FREEZE_TRUNK", "True", "at least one trainable parameter"]),
    (["MODEL.TEMP_FROZEN_PARAMS_ITER_MAP=[[x]]", "OPTIMIZER.num_epochs=1"],
     ["MODEL.TEMP_FROZEN_PARAMS_ITER_MAP[0]", "['x']", "[parameter name or substring, optimizer steps >= 0]"]),
]


@pytest.mark.parametrize("overrides,fragments", BAD_INPUTS, ids=[" ".join(o) for o, _ in BAD_INPUTS])
def test_bad_input_is_reported_clearly(cli_in_process, overrides, fragments):
    status, message = cli_in_process(*overrides)
    assert status not in (0, None)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in:\n{message}"
    assert "Traceback" not in message


def test_full_error_shows_traceback(cli):
    result = cli("OPTIMIZER.momentum=abc", env_extra={"HYDRA_FULL_ERROR": "1"})
    assert result.returncode != 0
    assert "Traceback" in result.stderr and "OPTIMIZER.momentum" in result.stderr


def test_bad_experiment_file_is_named(cli, tmp_path):
    mine = tmp_path / "mine" / "config"
    mine.mkdir(parents=True)
    (mine / "typo.yaml").write_text("# @package _global_\nOPTIMIZER:\n  momentum: 1.5\n")
    (mine / "vissl.yaml").write_text("config:\n  OPTIMIZER:\n    name: sgd\n" + "  # padding\n" * 200)
    search = f"hydra.searchpath=[file://{tmp_path / 'mine'}]"
    typo = cli(search, "config=typo")
    assert typo.returncode == 2
    assert "OPTIMIZER.momentum: got 1.5" in typo.stderr and "typo.yaml" in typo.stderr
    vissl = cli(search, "config=vissl")
    assert vissl.returncode == 2 and "a `config:` root" in vissl.stderr
    assert len(vissl.stderr.strip().splitlines()) == 1 and len(vissl.stderr) < 400  # one line, no config dump


def test_there_are_at_least_40_bad_input_cases():
    assert len(BAD_INPUTS) >= 40
