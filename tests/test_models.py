"""World model (method §4) and distributions (method §5.4): shapes, sizes, loss terms, masking, resets, learning."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from gsa.config import SMALL, TINY, WorldModelConfig
from gsa.models import OneHotDist, TwoHot, WorldModel, free_bits, parameter_counts, symexp, symlog, two_hot


def tiny(**kw) -> WorldModelConfig:
    return WorldModelConfig(**{**TINY, **kw})


def random_batch(cfg: WorldModelConfig, B=2, T=3, real_dims=12, seed=0) -> dict:
    g = torch.Generator().manual_seed(seed)
    batch = {
        "action": (torch.rand(B, T, cfg.action_size, generator=g) * 2 - 1),
        "action_mask": (torch.arange(cfg.action_size) < real_dims).float().expand(B, -1),
        "is_first": torch.zeros(B, T, dtype=torch.bool).index_fill(1, torch.tensor([0]), True),
    }
    batch["action"] *= batch["action_mask"][:, None]
    if cfg.obs == "pixels":
        batch["observation"] = torch.randint(0, 256, (B, T, 3, 64, 64), dtype=torch.uint8, generator=g)
    else:
        batch["state"] = torch.randn(B, T, cfg.state_size, generator=g) * 3
    return batch


def moving_squares(B=4, T=16, size=12) -> dict:
    """Coloured squares moving left and right; action[t, 0] is the move that led to frame t."""
    obs = torch.zeros(B, T, 3, 64, 64, dtype=torch.uint8)
    action = torch.zeros(B, T, 12)
    for b in range(B):
        x = 5 + 7 * b
        for t in range(T):
            if t > 0:
                step = 2 if (t + b) % 6 < 3 else -2
                x += step
                action[b, t, 0] = step / 2
            obs[b, t, b % 3, 10:10 + size, x:x + size] = 255
    is_first = torch.zeros(B, T, dtype=torch.bool).index_fill(1, torch.tensor([0]), True)
    return {"observation": obs, "action": action, "action_mask": torch.ones(B, 12), "is_first": is_first}


def numpy_kl(p_logits, q_logits, unimix=0.01):
    """KL(p ‖ q) per categorical, float64, with the uniform mix."""
    def probs(logits):
        e = np.exp(logits - logits.max(-1, keepdims=True))
        return (1 - unimix) * e / e.sum(-1, keepdims=True) + unimix / logits.shape[-1]
    p, q = probs(np.asarray(p_logits, np.float64)), probs(np.asarray(q_logits, np.float64))
    return (p * (np.log(p) - np.log(q))).sum(-1)


# --- distributions ---------------------------------------------------------------------------------------

def test_symlog_symexp_inverse():
    x = torch.tensor([-1e4, -20.0, -1.0, -1e-3, 0.0, 1e-3, 0.5, 3.0, 1e4], dtype=torch.float64)
    assert torch.allclose(symexp(symlog(x)), x, rtol=1e-12)
    assert torch.allclose(symlog(x), torch.sign(x) * torch.log(1 + x.abs()))


def test_onehot_kl_entropy_match_hand_computation():
    # Two classes by hand: p uniform, q = softmax([ln 3, 0]) = [3/4, 1/4], both mixed with 1% uniform.
    p, q = OneHotDist(torch.tensor([0.0, 0.0])), OneHotDist(torch.tensor([np.log(3.0), 0.0]))
    q_mixed = np.array([0.99 * 0.75 + 0.005, 0.99 * 0.25 + 0.005])
    assert p.kl(q).item() == pytest.approx(0.5 * np.log(0.5 / q_mixed[0]) + 0.5 * np.log(0.5 / q_mixed[1]), rel=1e-5)
    assert q.entropy().item() == pytest.approx(-(q_mixed * np.log(q_mixed)).sum(), rel=1e-5)
    assert q.log_prob(torch.tensor([1.0, 0.0])).item() == pytest.approx(np.log(q_mixed[0]), rel=1e-5)
    # Random (B, S, C) logits against float64 numpy.
    a, b = torch.randn(4, 8, 8) * 3, torch.randn(4, 8, 8) * 3
    assert np.allclose(OneHotDist(a).kl(OneHotDist(b)).numpy(), numpy_kl(a.numpy(), b.numpy()), atol=1e-5)
    # unimix keeps every class at probability ≥ 1% / C, so the KL stays finite for extreme logits.
    assert torch.isfinite(OneHotDist(torch.tensor([[50.0, -50.0]])).kl(OneHotDist(torch.tensor([[-50.0, 50.0]])))).all()


def test_onehot_samples_are_one_hot_with_straight_through_gradients():
    logits = torch.randn(64, 8, 8, requires_grad=True)
    dist = OneHotDist(logits)
    sample = dist.sample()
    assert torch.equal(sample.detach().sum(-1), torch.ones(64, 8)) and set(sample.detach().unique().tolist()) == {0.0, 1.0}
    assert torch.equal(dist.mode().detach().argmax(-1), logits.argmax(-1))
    (sample * torch.randn(8)).sum().backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0
    # Sample frequencies follow the mixed probabilities.
    freq = OneHotDist(torch.tensor([2.0, 0.0, -2.0]).expand(20000, 3)).sample().mean(0)
    assert torch.allclose(freq, OneHotDist(torch.tensor([2.0, 0.0, -2.0])).probs, atol=0.015)


def test_two_hot_encoding_round_trip_and_loss():
    bins = torch.linspace(-20, 20, 255)
    x = torch.tensor([-25.0, -20.0, -3.3, 0.0, 0.07, 19.99, 20.0, 33.0])
    enc = two_hot(x, bins)
    assert torch.allclose(enc.sum(-1), torch.ones(len(x))) and ((enc > 0).sum(-1) <= 2).all()
    assert torch.allclose((enc * bins).sum(-1), x.clamp(-20, 20), atol=1e-5)
    # TwoHot: a head whose softmax equals the two-hot of symlog(target) decodes back to the target.
    target = torch.tensor([-500.0, -1.0, 0.0, 0.3, 7.0, 1234.5])
    head = TwoHot(torch.log(two_hot(symlog(target), bins) + 1e-12))
    assert torch.allclose(head.mean(), target, rtol=1e-4, atol=1e-4)
    # loss = cross-entropy against the two-hot target: by hand for one value between bins k and k+1.
    logits = torch.randn(255)
    y = 0.3
    k = int(((symlog(torch.tensor(y)) + 20) / (40 / 254)).floor())
    w = ((symlog(torch.tensor(y)) - bins[k]) / (bins[k + 1] - bins[k])).item()
    logp = torch.log_softmax(logits, -1)
    expected = -((1 - w) * logp[k] + w * logp[k + 1])
    assert TwoHot(logits).loss(torch.tensor(y)).item() == pytest.approx(expected.item(), rel=1e-5)
    assert TwoHot(logits[None], low=-20, high=20).loss(torch.tensor([y])).shape == (1,)


# --- shapes and sizes ------------------------------------------------------------------------------------

def test_tiny_loss_shapes_and_metrics():
    cfg = tiny()
    wm = WorldModel(cfg)
    loss, metrics, post, last = wm.loss(random_batch(cfg, B=2, T=5))
    loss.backward()
    assert loss.shape == () and torch.isfinite(loss)
    assert set(metrics) == {"recon", "dyn", "rep", "kl_value", "prior_entropy", "post_entropy"}
    assert all(v.shape == () and not v.requires_grad for v in metrics.values())
    assert loss.item() == pytest.approx((metrics["recon"] + metrics["dyn"] + 0.1 * metrics["rep"]).item(), rel=1e-5)
    assert post["deter"].shape == (2, 5, 128) and post["stoch"].shape == post["logits"].shape == (2, 5, 8, 8)
    assert last["deter"].shape == (2, 128) and not last["deter"].requires_grad
    assert wm.rssm.feat(post).shape == (2, 5, wm.rssm.feat_size) and wm.decode(post).shape == (2, 5, 3, 64, 64)
    assert all(p.grad is not None for p in wm.parameters())
    frames = wm.openloop(random_batch(cfg, B=2, T=7), context=5, horizon=2)
    assert frames.shape == (2, 7, 3, 64, 64) and frames.dtype == torch.uint8


def test_state_mode_loss_shapes():
    cfg = tiny(obs="state", state_size=10, action_size=4)
    wm = WorldModel(cfg)
    loss, metrics, post, _ = wm.loss(random_batch(cfg, B=3, T=4))
    loss.backward()
    assert torch.isfinite(loss) and wm.decode(post).shape == (3, 4, 10)
    assert wm.openloop(random_batch(cfg, B=3, T=4), context=2).shape == (3, 4, 10)


def test_small_preset_forward():
    cfg = WorldModelConfig(**SMALL)
    wm = WorldModel(cfg)
    with torch.no_grad():
        loss, _, post, _ = wm.loss(random_batch(cfg, B=2, T=3))
    assert torch.isfinite(loss) and post["stoch"].shape == (2, 3, 32, 32)
    assert parameter_counts(wm)["total"] == pytest.approx(13.6e6, rel=0.02)  # NCRL "small"


def test_paper_preset_has_281M_parameters():
    """method §4: ≈ 281M world-model parameters without heads (the NCRL code prints 281.4M)."""
    with torch.device("meta"):
        wm = WorldModel(WorldModelConfig())
        loss, _, post, _ = wm.loss(random_batch(WorldModelConfig(), B=2, T=2))
    counts = parameter_counts(wm)
    print({k: f"{v / 1e6:.2f}M" for k, v in counts.items()})
    assert counts["total"] == pytest.approx(281.4e6, rel=0.02)
    assert counts["total"] == sum(v for k, v in counts.items() if k != "total")
    assert post["deter"].shape == (2, 2, 12288) and post["stoch"].shape == (2, 2, 32, 96) and loss.shape == ()


# --- loss terms ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("after_mean", [False, True])
def test_kl_terms_equal_numpy_reference(after_mean):
    cfg = tiny(free_nats=0.9, free_bits_after_mean=after_mean)
    wm = WorldModel(cfg)
    batch = random_batch(cfg, B=3, T=6)
    torch.manual_seed(1)
    _, metrics, _, _ = wm.loss(batch)
    torch.manual_seed(1)  # same samples again
    with torch.no_grad():
        post, prior = wm.observe(batch)
    kl = numpy_kl(post["logits"].numpy(), prior["logits"].numpy()).sum(-1)  # (B, T), summed over latents
    clipped = max(kl.mean(), 0.9) if after_mean else np.maximum(kl, 0.9).mean()
    assert metrics["kl_value"].item() == pytest.approx(kl.mean(), rel=1e-4)
    assert metrics["dyn"].item() == pytest.approx(clipped, rel=1e-4)
    assert metrics["rep"].item() == pytest.approx(clipped, rel=1e-4)


def test_free_bits_clip_per_step_and_after_mean():
    kl = torch.tensor([0.5, 2.0], requires_grad=True)
    per_step = free_bits(kl, 1.0)
    per_step.backward()
    assert per_step.item() == pytest.approx(1.5) and kl.grad.tolist() == [0.0, 0.5]
    kl.grad = None
    after = free_bits(kl, 1.0, after_mean=True)
    after.backward()
    assert after.item() == pytest.approx(1.25) and kl.grad.tolist() == [0.5, 0.5]
    small = torch.tensor([0.2, 0.9], requires_grad=True)
    for option in (False, True):
        out = free_bits(small, 1.0, option)
        (grad,) = torch.autograd.grad(out, small)
        assert out.item() == 1.0 and grad.abs().sum() == 0


def test_kl_below_free_nats_gives_no_gradient_and_straight_through_reaches_posterior():
    """With every KL under the free nats, the prior gets no gradient at all, while the reconstruction
    still trains the posterior through the straight-through samples."""
    wm = WorldModel(tiny(free_nats=1e6))
    loss, metrics, _, _ = wm.loss(random_batch(wm.cfg, B=2, T=4))
    assert metrics["dyn"] == 1e6 and metrics["rep"] == 1e6
    loss.backward()
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in wm.rssm.prior.parameters())
    assert wm.rssm.posterior[-1].weight.grad.abs().sum() > 0


# --- masking and resets ----------------------------------------------------------------------------------

def test_padded_action_dims_cannot_change_any_output():
    cfg = tiny()
    wm = WorldModel(cfg)
    clean = random_batch(cfg, B=2, T=6, real_dims=4)
    noisy = {**clean, "action": clean["action"] + torch.randn_like(clean["action"]) * 5 * (1 - clean["action_mask"][:, None])}
    assert not torch.equal(clean["action"], noisy["action"])
    outs = []
    for batch in (clean, noisy):
        torch.manual_seed(0)
        loss, _, post, _ = wm.loss(batch)
        torch.manual_seed(0)
        outs.append((loss, post, wm.openloop(batch, context=3)))
    (l1, p1, f1), (l2, p2, f2) = outs
    assert torch.equal(l1, l2) and torch.equal(f1, f2) and all(torch.equal(p1[k], p2[k]) for k in p1)


def test_state_resets_at_is_first():
    """Observing a sequence after an is_first (with any carried state) equals observing it alone."""
    cfg = tiny()
    wm = WorldModel(cfg).eval()
    a, b = random_batch(cfg, B=2, T=4, seed=1), random_batch(cfg, B=2, T=5, seed=2)
    joined = {k: torch.cat([a[k], b[k]], 1) if k != "action_mask" else a[k] for k in a}
    assert joined["is_first"][:, 4].all()
    garbage = {"deter": torch.randn(2, 128), "stoch": torch.rand(2, 8, 8)}
    with torch.no_grad():
        torch.manual_seed(0)
        post_joined, _ = wm.observe(joined)
        torch.manual_seed(0)
        wm.observe(a)  # consume the same random numbers as the first 4 steps of `joined`
        post_alone, _ = wm.observe(b, state=garbage)
    for k in post_alone:
        assert torch.allclose(post_joined[k][:, 4:], post_alone[k], atol=1e-6)
    assert not torch.equal(post_joined["deter"][:, 3], post_alone["deter"][:, 0])


# --- learning --------------------------------------------------------------------------------------------

def test_tiny_model_learns_moving_squares():
    torch.manual_seed(0)
    wm = WorldModel(tiny())
    batch = moving_squares()
    opt = torch.optim.Adam(wm.parameters(), lr=1e-3)
    recon = []
    for _ in range(100):
        loss, metrics, _, _ = wm.loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        recon.append(metrics["recon"].item())
    assert np.mean(recon[-5:]) < 0.5 * recon[0], recon[::10]
