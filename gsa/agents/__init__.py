"""Online agents, one file per agent, named after it (method §5, §7).

Every agent plays through the same calls, so that one online loop can drive any of them:

    agent.reset(obs)                      # episode start
    action = agent.act(step, explore)     # padded action for the current observation; padded dims exactly 0
    agent.observe(obs)                    # the next observation
    metrics = agent.update(batch, step)   # one gradient update on a batch of (B, agent.window) windows
    agent.state_dict() / agent.load_state_dict(state)

``agent.window`` is the number of frames per sampled window (``gsa.data.sampler``): the sequence length for
world-model agents, ``frame_stack + n_step`` for DrQ-v2. Agents:

- ``drqv2`` — DrQ-v2, the model-free baseline (``gsa/agents/drqv2.py``).
The world-model agent (GSA, its ablations and DreamerV3) is ``gsa.train.finetune.Agent``.
"""
