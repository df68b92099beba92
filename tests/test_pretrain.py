"""World-model pre-training: learning, checkpoints, resume, clear errors."""
import copy
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest
import torch

from gsa.config import set_field
from gsa.train import checkpoint
from gsa.train.pretrain import load_world_model, pretrain


def configure(cfg, **fields):
    """A copy of ``cfg`` with ``section__field=value`` overrides."""
    cfg = copy.deepcopy(cfg)
    for key, value in fields.items():
        set_field(cfg, key.replace("__", "."), value)
    return cfg


def test_tiny_model_halves_reconstruction_loss(smoke_data, tmp_path):
    cfg = configure(smoke_data, pretrain__steps=150, pretrain__log_every=10, pretrain__seq_len=16)
    pretrain(cfg, out=tmp_path, progress=False)
    log = pd.read_csv(tmp_path / "train.csv")
    assert log["recon"].iloc[-1] < 0.5 * log["recon"].iloc[0], log["recon"].tolist()
    model, loaded_cfg, state = load_world_model(tmp_path / "checkpoint.pt")
    assert state["step"] == 150 and loaded_cfg.world_model == cfg.world_model


def test_resumed_run_matches_uninterrupted(smoke_data, tmp_path):
    """A killed pre-training resumes exactly, also from its dataset copied elsewhere (compared by content)."""
    cfg = configure(smoke_data, pretrain__steps=6, pretrain__log_every=1, pretrain__checkpoint_every=3,
                    pretrain__seq_len=8, pretrain__batch_size=4)
    pretrain(cfg, out=tmp_path / "straight", progress=False)
    pretrain(cfg, out=tmp_path / "killed", progress=False, stop_at=3)
    assert len(pd.read_csv(tmp_path / "killed" / "train.csv")) == 3
    with pytest.raises(ValueError, match="3 of its 6 steps"):  # fine-tuning refuses a half-trained model
        load_world_model(tmp_path / "killed" / "checkpoint.pt")
    assert load_world_model(tmp_path / "killed" / "checkpoint.pt", finished=False)[2]["step"] == 3
    shutil.copytree(cfg.data.root, tmp_path / "moved")  # resumes from step 3, from the same dataset moved
    pretrain(configure(cfg, data__root=str(tmp_path / "moved")), out=tmp_path / "killed", progress=False)
    straight = pd.read_csv(tmp_path / "straight" / "train.csv")
    resumed = pd.read_csv(tmp_path / "killed" / "train.csv")
    assert resumed["step"].tolist() == list(range(1, 7))
    columns = ["loss", "recon", "dyn", "rep", "grad_norm"]
    np.testing.assert_allclose(resumed[columns].to_numpy(), straight[columns].to_numpy(), rtol=1e-5)
    a = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=False)["model"]
    b = torch.load(tmp_path / "killed" / "checkpoint.pt", weights_only=False)["model"]
    assert all(torch.allclose(a[k], b[k], rtol=1e-5, atol=1e-7) for k in a)


def test_clear_errors(smoke_data, tmp_path):
    with pytest.raises(FileNotFoundError, match="gsa pretrain"):
        load_world_model(tmp_path / "nothing.pt")
    (tmp_path / "broken.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="corrupt"):
        checkpoint.load(tmp_path / "broken.pt")
    with pytest.raises(ValueError, match="action_size"):
        pretrain(configure(smoke_data, world_model__action_size=4), out=tmp_path / "a", progress=False)
    with pytest.raises(ValueError, match="no 'nope' episodes"):
        pretrain(configure(smoke_data, pretrain__benchmark="nope"), out=tmp_path / "b", progress=False)


def test_state_mode_pretraining(smoke_data, tmp_path):
    cfg = configure(smoke_data, world_model__obs="state", pretrain__steps=60, pretrain__log_every=10,
                    pretrain__seq_len=16)
    pretrain(cfg, out=tmp_path, progress=False)
    log = pd.read_csv(tmp_path / "train.csv")
    assert log["recon"].iloc[-1] < log["recon"].iloc[0]


def test_compile_modes_resolve_per_device():
    """None picks the whole-graph compile and bf16 on CUDA and neither on CPU; booleans stay accepted."""
    from gsa.train.pretrain import runtime
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert runtime(None, None, cpu) == ("off", False)
    assert runtime(None, None, cuda) == ("graph", True)
    assert runtime(True, False, cuda) == ("graph", False)
    assert runtime(False, None, cuda) == ("off", True)
    assert runtime("step", None, cpu) == ("step", False)
    with pytest.raises(ValueError, match="graph"):
        runtime("fast", None, cpu)


def test_one_world_model_per_benchmark(smoke_data, tmp_path, monkeypatch):
    """method §4 / NCRL: by default one model per benchmark, stored under its own name; a task fine-tunes from
    its benchmark's model, and "all" keeps a single model on all the data as an option."""
    from gsa.config import preset
    from gsa.train.pretrain import open_dataset, pretrain_all, world_model_path

    monkeypatch.setenv("GSA_ROOT", str(tmp_path))
    assert preset("paper").pretrain.benchmark == "each"
    cfg = configure(smoke_data, pretrain__benchmark="each", pretrain__steps=2, pretrain__seq_len=8,
                    pretrain__batch_size=2)
    paths = pretrain_all(cfg, progress=False)
    assert set(paths) == {"dmc", "metaworld"} and paths["dmc"] != paths["metaworld"]
    for benchmark, path in paths.items():
        assert world_model_path(cfg, benchmark) == path and path.exists()
        assert checkpoint.load(path)["benchmark"] == benchmark
        assert set(open_dataset(cfg, None, benchmark).manifest["benchmark"]) == {benchmark}
    single = configure(cfg, pretrain__benchmark="all")
    assert world_model_path(single, "dmc") == world_model_path(single, "metaworld") != paths["dmc"]
    with pytest.raises(ValueError, match="no world model"):
        world_model_path(configure(cfg, pretrain__benchmark="dmc"), "metaworld")
    with pytest.raises(ValueError, match="pretrain_all"):
        pretrain(cfg, out=tmp_path / "x", progress=False)


def test_step_compile_under_ddp_compiles_the_wrapped_model(tmp_path):
    """``pretrain.compile="step"`` with DDP: the RSSM is the wrapped module's (DDP has no ``.rssm``)."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from gsa.config import TINY, OptimConfig, WorldModelConfig
    from gsa.models.world_model import WorldModel
    from gsa.train.optim import make_optimizer
    from gsa.train.pretrain import make_train_step

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        model = WorldModel(WorldModelConfig(**TINY, obs="state", state_size=6, action_size=2))
        plain_step = model.rssm.img_step
        wrapped = DistributedDataParallel(model)
        make_train_step(wrapped, make_optimizer(model.parameters(), OptimConfig()), 100.0, "step", False,
                        torch.device("cpu"))
        assert model.rssm.img_step is not plain_step  # replaced by its compiled version
    finally:
        dist.destroy_process_group()


def test_code_version_names_the_commit_and_uncommitted_changes(tmp_path):
    version = checkpoint.code_version.__wrapped__  # uncached: the checkout changes between calls
    package = tmp_path / "repo" / "gsa"
    package.mkdir(parents=True)
    (package / "model.py").write_text("x = 1\n")
    assert version(package) == "gsa 0.1.0"  # not a git checkout

    def git(*args):
        return subprocess.run(["git", "-C", str(package.parent), "-c", "user.name=t", "-c", "user.email=t@t", *args],
                              capture_output=True, text=True, check=True).stdout.strip()
    git("init", "-q"), git("add", "."), git("commit", "-qm", "one")
    sha = git("rev-parse", "--short=10", "HEAD")
    assert version(package) == sha
    (package.parent / "notes.txt").write_text("outside the package")  # untracked, and outside: still clean
    (package / "new.py").write_text("")
    assert version(package) == sha
    (package / "model.py").write_text("x = 2\n")
    assert version(package) == sha + "+dirty"
