"""Online agents, one file per agent, named after it (method §5, §7).

Every agent plays through the same calls, so that one online loop (``gsa.train.online``) drives any of them:

    agent.reset()                                  # episode start
    agent.observe(obs)                             # the current observation (once the agent may act)
    action = agent.policy(action_mask, explore, step)   # padded action; padded dims exactly 0
    agent.executed(action)                         # the action the env executed (the agent's or the prior's)
    metrics = agent.update(batch, step=step)       # one update on a batch of (B, agent.window) windows
    agent.acting_state                             # get / set: kept across an evaluation mid-episode
    agent.state_dict() / agent.load_state_dict(state)

and declares ``window`` (frames per sampled window, ``gsa.data.sampler``: the sequence length for the
world-model agent, ``frame_stack + n_step`` for DrQ-v2), ``batch_size``, ``update_every`` (agent steps) and
``warmup_frames``. ``step`` counts agent steps. Agents:

- ``dreamer`` — the world-model agent: GSA, its ablations and DreamerV3 (``DreamerAgent``);
- ``drqv2`` — DrQ-v2, the model-free baseline (``DrQv2``), also JSRL-BC's learner;
- ``rlpd`` — RLPD, the learner of UDS+RLPD (``RLPD``);
- ``explore`` — ExPLORe: RLPD with optimistic labels on the offline rows (``ExPLORe``);
- ``r3m`` — the R3M-style encoder DrQ-v2 reads, frozen (``R3MEncoder``, ``FrameEncoder``);
- ``diffusion`` — Diffusion Policy, imitation of the retrieved data (``DiffusionPolicy``);
- ``packnet`` — PackNet on DrQ-v2 for the continual chain (``PackNetDrQv2``).
"""
