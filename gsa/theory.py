"""Numerical sanity checks of the paper's three propositions (paper App. B, method §9).

1. :func:`retrieval_tv_check` — *retrieval lowers distribution shift* (Prop. 1): the offline data is a mixture
   ``D_off = β·D_ret + (1−β)·D_rest``; when the retrieved part is the part nearest to the online data, the
   total-variation distance TV(D_ret, D_on) is smaller than TV(D_off, D_on). Checked on discretised Gaussian
   mixtures (exact TV on a grid) and, with :func:`histogram_tv`, on real encoder features.
2. :func:`rehearsal_forgetting_check` — *rehearsal limits forgetting* (Prop. 2): a small MLP fitted on task A,
   then on task B alone or on B with A's data replayed beside it; the loss on A after B.
3. :func:`guidance_gain_check` — *an α-coupled guide/explorer policy gains at least α·δ/(1−γ)* (Prop. 3): on
   random tabular MDPs solved exactly, the policy that takes the guide's action with probability α and the
   explorer's otherwise improves on the explorer by ≥ α·δ/(1−γ), δ = min_s A_explorer(s, guide(s)).

Each returns plain numbers (and the notebook ``05_theory`` plots them); ``tests/test_theory.py`` asserts them.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np


# -- Proposition 1: retrieval and total variation ---------------------------------------------------------
def tv(p: np.ndarray, q: np.ndarray) -> float:
    """Total-variation distance ½ Σ |p − q| of two distributions on the same finite support."""
    p, q = np.asarray(p, float), np.asarray(q, float)
    return 0.5 * float(np.abs(p / p.sum() - q / q.sum()).sum())


def histogram_tv(a: np.ndarray, b: np.ndarray, bins: int = 12, reference: np.ndarray | None = None) -> float:
    """TV between two samples (N, D) after projecting both on the first two principal axes of ``reference``
    (default: their union) and binning on a shared ``bins × bins`` grid spanning it: a coarse plug-in estimate
    for high-dimensional features, biased upward for small samples — compare estimates made with the same
    reference and similar sample sizes."""
    ref = np.concatenate([a, b]) if reference is None else reference
    ref = ref.astype(np.float64)
    mean = ref.mean(0)
    axes = np.linalg.svd(ref - mean, full_matrices=False)[2][:2].T          # (D, ≤2)
    lo, hi = ((ref - mean) @ axes).min(0), ((ref - mean) @ axes).max(0)
    edges = [np.linspace(l, h + 1e-9, bins + 1) for l, h in zip(lo, hi)]
    hist = lambda x: np.histogramdd(np.clip((x - mean) @ axes, lo, hi), bins=edges)[0].ravel()  # noqa: E731
    return tv(hist(a), hist(b))


@dataclass
class RetrievalTV:
    tv_offline: float    # TV(D_off, D_on)
    tv_retrieved: float  # TV(D_ret, D_on)
    tv_rest: float       # TV(D_rest, D_on)
    beta: float          # share of D_off that is retrieved
    mixture_bound: float  # β·TV(D_ret, D_on) + (1 − β)·TV(D_rest, D_on) ≥ TV(D_off, D_on)


def retrieval_tv_check(rng: np.random.Generator, components: int = 6, k: int = 1_000, samples: int = 12_000,
                       grid: int = 24) -> RetrievalTV:
    """One random instance of Prop. 1 on a 2-D grid: offline data drawn from ``components`` Gaussian blobs
    (many "tasks"), online data from a blob near one of them; the ``k`` offline points nearest to an online
    query (the reset state, as in method §5.2) form D_ret. Distributions are histograms on a shared grid, so
    every TV is exact for the discretised samples."""
    centres = rng.uniform(-6, 6, (components, 2))
    offline = np.concatenate([c + rng.normal(0, 0.8, (samples // components, 2)) for c in centres])
    online_centre = centres[0] + rng.normal(0, 0.3, 2)
    online = online_centre + rng.normal(0, 0.8, (samples, 2))
    query = online[0]
    nearest = np.argsort(((offline - query) ** 2).sum(1))[:k]
    mask = np.zeros(len(offline), bool)
    mask[nearest] = True
    edges = [np.linspace(-10, 10, grid + 1)] * 2
    hist = lambda x: np.histogramdd(np.clip(x, -9.999, 9.999), bins=edges)[0].ravel()  # noqa: E731
    p_on, p_off, p_ret, p_rest = hist(online), hist(offline), hist(offline[mask]), hist(offline[~mask])
    beta = mask.mean()
    t_ret, t_rest = tv(p_ret, p_on), tv(p_rest, p_on)
    return RetrievalTV(tv(p_off, p_on), t_ret, t_rest, float(beta), float(beta * t_ret + (1 - beta) * t_rest))


def feature_sets(cfg, task: str, wm_path=None, frames_per_episode: int | None = None, online_episodes: int = 4,
                 seed: int = 0) -> tuple[dict[str, np.ndarray], dict]:
    """The pre-trained encoder's features (N, D) of three sets of observations of ``task``: ``online`` (the
    task's env under uniform random actions — a stand-in for the first online episodes), ``offline`` (the
    whole dataset the world model was trained on) and ``retrieved`` (the trajectories the run's own
    ``retrieve`` picks, method §5.2); ``frames_per_episode`` frames drawn per offline episode (None: all).
    Returns the features and the retrieval info. Used by Prop. 1's real-data check and the t-SNE (Fig. 2)."""
    import torch

    from gsa.envs import get_spec, pad
    from gsa.train import finetune as ft
    from gsa.train.pretrain import load_world_model, open_dataset, world_model_path

    cfg = copy.deepcopy(cfg)
    wm_path = wm_path or world_model_path(cfg, get_spec(task).benchmark)
    wm, wm_cfg, wm_state = load_world_model(wm_path)
    wm.eval()
    cfg.world_model, benchmark = wm_cfg.world_model, wm_state.get("benchmark", "all")
    key = "observation" if cfg.world_model.obs == "pixels" else "state"
    rng = np.random.default_rng(seed)

    @torch.no_grad()
    def encode(x: np.ndarray) -> np.ndarray:
        x = x if key == "observation" else pad(x, cfg.world_model.state_size)
        chunks = np.array_split(x, max(1, len(x) // 256))
        return np.concatenate([wm.encoder(torch.as_tensor(c)).float().numpy() for c in chunks])

    def frames(dataset) -> np.ndarray:
        picks = []
        for e in range(len(dataset)):
            obs = dataset.episode(e)[key]
            keep = len(obs) if frames_per_episode is None else min(frames_per_episode, len(obs))
            picks.append(obs[rng.choice(len(obs), keep, replace=False)])
        return np.concatenate(picks)

    retrieved, info = ft.retrieve(cfg, task, wm, wm_path, None, "cpu", benchmark)
    env = ft.task_env(cfg, task, seed=seed + 30_000)
    online = []
    for i in range(online_episodes):
        obs, _ = env.reset(seed=seed + 30_000 + i)
        online.append(obs)
        done = False
        while not done:
            obs, _, terminated, truncated, _ = env.step(rng.uniform(-1, 1, env.action_space.shape).astype(np.float32))
            online.append(obs)
            done = terminated or truncated
    env.close()
    features = {"online": encode(np.stack(online)), "offline": encode(frames(open_dataset(cfg, None, benchmark))),
                "retrieved": encode(frames(retrieved))}
    return features, info


def real_retrieval_tv(cfg, task: str, wm_path=None, frames_per_episode: int | None = None,
                      online_episodes: int = 4, bins: int = 8, seed: int = 0) -> dict:
    """Prop. 1 on real data: TV (:func:`histogram_tv`) between the features of online observations and of (a)
    the whole offline dataset, (b) the retrieved trajectories (:func:`feature_sets`). All three are
    subsampled to the same count, and one projection and grid, fitted on all three, serve both estimates,
    so they are comparable."""
    features, info = feature_sets(cfg, task, wm_path, frames_per_episode, online_episodes, seed)
    rng = np.random.default_rng(seed)
    n = min(len(f) for f in features.values())
    f_on, f_off, f_ret = (f[rng.choice(len(f), n, replace=False)] for f in features.values())
    ref = np.concatenate([f_on, f_off, f_ret])
    return {"task": task, "samples": n, "k": info["k"], "tv_offline": histogram_tv(f_off, f_on, bins, ref),
            "tv_retrieved": histogram_tv(f_ret, f_on, bins, ref), "embodiment_precision": info["embodiment_precision"]}


# -- Proposition 2: rehearsal and forgetting --------------------------------------------------------------
@dataclass
class Forgetting:
    loss_a_before: float      # task-A loss after training on A
    loss_a_plain: float       # … after then training on B alone
    loss_a_rehearsal: float   # … after then training on B with A's data replayed beside it
    loss_b_plain: float
    loss_b_rehearsal: float


def rehearsal_forgetting_check(seed: int = 0, steps: int = 1_500, rehearsal_share: float = 0.25) -> Forgetting:
    """Fit y = sin(x) with a 1-64-64-1 MLP: task A is x ∈ [−π, 0], task B is x ∈ [0, π]. After A, train on B
    for ``steps`` Adam steps either alone or with a ``rehearsal_share`` of each batch drawn from A (the
    paper's 4-of-16 rehearsal rows). Losses are MSE on held-out points of each task."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    torch_rng = lambda n, lo, hi: lo + (hi - lo) * torch.rand(n, 1, generator=gen)  # noqa: E731
    x_a, x_b = torch_rng(512, -np.pi, 0.0), torch_rng(512, 0.0, np.pi)
    test_a, test_b = torch.linspace(-np.pi, 0, 200)[:, None], torch.linspace(0, np.pi, 200)[:, None]
    target = torch.sin

    def make():
        torch.manual_seed(seed)
        return torch.nn.Sequential(torch.nn.Linear(1, 64), torch.nn.Tanh(), torch.nn.Linear(64, 64),
                                   torch.nn.Tanh(), torch.nn.Linear(64, 1))

    def loss(net, x):
        with torch.no_grad():
            return float(((net(x) - target(x)) ** 2).mean())

    def fit(net, sources, n):
        opt = torch.optim.Adam(net.parameters(), lr=3e-3)
        for _ in range(n):
            x = torch.cat([data[torch.randint(len(data), (size,), generator=gen)] for data, size in sources])
            opt.zero_grad()
            ((net(x) - target(x)) ** 2).mean().backward()
            opt.step()
        return net

    net = fit(make(), [(x_a, 64)], steps)
    before = loss(net, test_a)
    state = {k: v.clone() for k, v in net.state_dict().items()}
    plain = fit(net, [(x_b, 64)], steps)
    result = dict(a=loss(plain, test_a), b=loss(plain, test_b))
    net.load_state_dict(state)
    replayed = round(64 * rehearsal_share)
    rehearsed = fit(net, [(x_b, 64 - replayed), (x_a, replayed)], steps)
    return Forgetting(before, result["a"], loss(rehearsed, test_a), result["b"], loss(rehearsed, test_b))


# -- Proposition 3: execution guidance ------------------------------------------------------------------
@dataclass
class GuidanceGain:
    gain: float    # η(π_α) − η(π_explorer)
    bound: float   # α·δ/(1−γ)
    delta: float   # min_s A_explorer(s, guide(s))
    alpha: float


def random_mdp(rng: np.random.Generator, states: int = 8, actions: int = 4):
    """Transitions P (S, A, S) from a Dirichlet, rewards R (S, A) uniform in [0, 1], start μ uniform."""
    P = rng.dirichlet(np.full(states, 0.5), (states, actions))
    R = rng.uniform(0, 1, (states, actions))
    return P, R, np.full(states, 1 / states)


def policy_values(P: np.ndarray, R: np.ndarray, pi: np.ndarray, gamma: float) -> tuple[np.ndarray, np.ndarray]:
    """Exact V (S,) and Q (S, A) of a stochastic policy pi (S, A): V = (I − γ P_π)⁻¹ r_π."""
    S = P.shape[0]
    P_pi = np.einsum("sa,sat->st", pi, P)
    r_pi = (pi * R).sum(1)
    V = np.linalg.solve(np.eye(S) - gamma * P_pi, r_pi)
    return V, R + gamma * P @ V


def guidance_gain_check(rng: np.random.Generator, alpha: float, gamma: float = 0.9, guide: str = "greedy",
                        states: int = 8, actions: int = 4) -> GuidanceGain:
    """One random MDP: a stochastic explorer, a deterministic guide (``greedy`` w.r.t. the explorer's Q — a
    guide that is better, δ ≥ 0 — or ``random``, any δ), and π_α = α·guide + (1 − α)·explorer, the α-coupled
    policy (TRPO Def. 1). By the performance-difference lemma
    η(π_α) − η(π_e) = 1/(1−γ)·E_{s∼d_α}[α·A_e(s, guide(s))] ≥ α·δ/(1−γ) with η the discounted return from μ."""
    P, R, mu = random_mdp(rng, states, actions)
    explorer = rng.dirichlet(np.ones(actions), states)                       # (S, A)
    V_e, Q_e = policy_values(P, R, explorer, gamma)
    choice = Q_e.argmax(1) if guide == "greedy" else rng.integers(actions, size=states)
    guide_pi = np.eye(actions)[choice]                                       # (S, A) one-hot
    delta = float((Q_e[np.arange(states), choice] - V_e).min())
    coupled = alpha * guide_pi + (1 - alpha) * explorer
    V_a, _ = policy_values(P, R, coupled, gamma)
    return GuidanceGain(float(mu @ (V_a - V_e)), alpha * delta / (1 - gamma), delta, alpha)
