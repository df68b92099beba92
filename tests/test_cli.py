"""The command line: bad input gives one clear line and exit code 2; --debug gives the traceback."""
import copy

import pytest

from gsa.cli import main
from gsa.config import set_field
from gsa.train.checkpoint import check_config
from gsa.train.pretrain import pretrain


@pytest.mark.parametrize("argv, message", [
    (["finetune", "--task", "dmc-walker-flyy"], "unknown task 'dmc-walker-flyy'"),
    (["pretrain", "-o", "pretrain.stepz=3"], "unknown config field 'pretrain.stepz'"),
    (["pretrain", "-o", "data.root=/nonexistent/gsa"], "no manifest.csv in /nonexistent/gsa"),
    (["finetune", "--task", "mw-reach", "--world-model", "/nonexistent/wm.pt"], "no checkpoint at /nonexistent/wm.pt"),
])
def test_bad_input_prints_one_line_and_exits_2(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("GSA_RESULTS_DIR", str(tmp_path))  # whatever runs the checkout's results/ holds
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.startswith("gsa: error: ") and message in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_a_missing_world_model_asked_for_is_an_error_even_when_the_run_is_done(tmp_path, monkeypatch, capsys):
    """``--world-model`` names a file that does not exist: the same one-line error whether or not the run it
    would resume has finished (a finished run used to return before the path was looked at)."""
    monkeypatch.setenv("GSA_RESULTS_DIR", str(tmp_path))
    run = tmp_path / "runs" / "smoke" / "gsa" / "mw-reach" / "seed0"
    run.mkdir(parents=True)
    (run / "done.json").write_text('{"frames": 1000000}')
    with pytest.raises(SystemExit) as exit_:
        main(["finetune", "--task", "mw-reach", "--world-model", "/nonexistent/wm.pt"])
    assert exit_.value.code == 2 and "no checkpoint at /nonexistent/wm.pt" in capsys.readouterr().err


def test_debug_shows_the_exception():
    with pytest.raises(ValueError, match="unknown task"):
        main(["--debug", "finetune", "--task", "dmc-walker-flyy"])


def test_check_config_names_every_differing_field_and_allows_a_longer_run():
    saved = {"world_model": {"deter": 128, "classes": 8}, "pretrain": {"steps": 10, "optim": {"lr": 1e-4}}}
    check_config(saved, {**saved, "pretrain": {"steps": 99, "optim": {"lr": 1e-4}}}, "ckpt.pt")  # longer: fine
    changed = copy.deepcopy(saved)
    changed["world_model"]["deter"], changed["pretrain"]["optim"]["lr"] = 256, 3e-4
    with pytest.raises(ValueError) as error:
        check_config(saved, changed, "ckpt.pt")
    assert "world_model.deter: 128 in the checkpoint, 256 now" in str(error.value)
    assert "pretrain.optim.lr" in str(error.value) and "classes" not in str(error.value)
    # a field added to the config after the checkpoint was made (its default keeps the old behaviour)
    check_config(saved, {**saved, "rlpd": {"bonus_scale": 1.0}}, "ckpt.pt")
    # another agent's section may change under a world-model run (resuming a DreamerV3 run after the cpu
    # preset's DrQ-v2 width changed), not the run's own
    from gsa.train.finetune import resume_ignores

    other = {**saved, "drqv2": {"hidden_dim": 1024}}
    check_config(other, {**saved, "drqv2": {"hidden_dim": 256}}, "ckpt.pt", ignore=resume_ignores("dreamerv3"))
    with pytest.raises(ValueError, match="drqv2.hidden_dim"):
        check_config(other, {**saved, "drqv2": {"hidden_dim": 256}}, "ckpt.pt", ignore=resume_ignores("drqv2"))


def test_resuming_pretraining_with_another_model_config_names_the_field(smoke_data, tmp_path):
    cfg = copy.deepcopy(smoke_data)
    for key, value in {"pretrain.steps": 2, "pretrain.seq_len": 8, "pretrain.batch_size": 2,
                       "pretrain.benchmark": "metaworld"}.items():
        set_field(cfg, key, value)
    pretrain(cfg, out=tmp_path / "wm", progress=False)
    set_field(cfg, "world_model.deter", 64)
    set_field(cfg, "pretrain.steps", 4)
    with pytest.raises(ValueError, match=r"world_model\.deter: 128 in the checkpoint, 64 now"):
        pretrain(cfg, out=tmp_path / "wm", progress=False)
