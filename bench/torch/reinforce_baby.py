"""PyTorch CPU reference for the WMIL benchmarks: mirrors the WMIL source loop for PatternEcho.

BabyModel (state encoder, 2-layer transformer core over a length-1 sequence, action, world-model and value
heads; 116,625 parameters at the defaults, with the source's module names) trained by REINFORCE with an
EMA baseline, an entropy bonus and the world-model loss on the raw next state, Adam and grad-norm clipping
at 1.0. Two figures, so the TypeScript benchmarks have a same-run PyTorch counterpart for both:
  * the whole loop (sample a batch of 64 one-step PatternEcho episodes, act, learn), updates/s and
    episodes/s, and the final success rate;
  * the bare train step (forward + backward + Adam on one fixed batch of 64), updates/s.
Prints one JSON line on stdout; run it with /usr/bin/python3 (the interpreter with torch).
"""

import os
import sys


def _threads_from_argv(argv, default="1"):
    for i, a in enumerate(argv):
        if a == "--threads" and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith("--threads="):
            return a.split("=", 1)[1]
    return default


# OpenBLAS, when it is the BLAS that torch loads, reads its thread count once at load time and
# torch.set_num_threads does not reach it, so --threads has to be in the environment before the import.
os.environ["OPENBLAS_NUM_THREADS"] = _threads_from_argv(sys.argv)

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.distributions.categorical import Categorical  # noqa: E402

EXPECTED_PARAMETERS = 116_625
BATCH = 64
LR = 2e-3
ENTROPY_COEF = 0.05
WORLD_MODEL_COEF = 1.0
BASELINE_DECAY = 0.99
MAX_GRAD_NORM = 1.0
SUCCESS_WINDOW = 10


class StateEncoder(nn.Module):
    def __init__(self, state_dim, hidden):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(state_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden))

    def forward(self, x):
        return self.encoder(x)


class TransformerCore(nn.Module):
    def __init__(self, hidden, heads, ff, layers, dropout):
        super().__init__()
        layer = nn.TransformerEncoderLayer(d_model=hidden, nhead=heads, dim_feedforward=ff, dropout=dropout, batch_first=True)
        self.transformer = nn.TransformerEncoder(layer, num_layers=layers)

    def forward(self, h):
        # the source feeds each state as a sequence of one token
        return self.transformer(h.unsqueeze(1)).squeeze(1)


class ActionHead(nn.Module):
    def __init__(self, hidden, num_actions):
        super().__init__()
        self.fc = nn.Linear(hidden, num_actions)

    def forward(self, h):
        return self.fc(h)


class WorldModelHead(nn.Module):
    """Predicts the raw next state from (h, action), not an embedding of it (the source's fix #2)."""

    def __init__(self, hidden, num_actions, state_dim):
        super().__init__()
        self.action_embed = nn.Embedding(num_actions, hidden)
        self.predictor = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.ReLU(), nn.Linear(hidden, state_dim))

    def forward(self, h, action):
        return self.predictor(torch.cat([h, self.action_embed(action)], dim=-1))


class ValueHead(nn.Module):
    def __init__(self, hidden):
        super().__init__()
        self.fc = nn.Sequential(nn.Linear(hidden, hidden // 2), nn.ReLU(), nn.Linear(hidden // 2, 1))

    def forward(self, h):
        return self.fc(h).squeeze(-1)


class BabyModel(nn.Module):
    def __init__(self, state_dim=8, num_actions=8, hidden=64, layers=2, heads=4, ff=256, dropout=0.0):
        super().__init__()
        self.encoder = StateEncoder(state_dim, hidden)
        self.transformer = TransformerCore(hidden, heads, ff, layers, dropout)
        self.action_head = ActionHead(hidden, num_actions)
        self.world_model = WorldModelHead(hidden, num_actions, state_dim)
        self.value_head = ValueHead(hidden)

    def forward(self, state):
        h = self.transformer(self.encoder(state))
        return self.action_head(h), self.value_head(h), h


def pattern_echo_batch(n, num_actions=8):
    """n one-step PatternEcho episodes: observe a one-hot target, the next state is a fresh random target."""
    targets = torch.randint(0, num_actions, (n,))
    next_targets = torch.randint(0, num_actions, (n,))
    return targets, F.one_hot(targets, num_actions).float(), F.one_hot(next_targets, num_actions).float()


def reinforce_loss(model, obs, next_obs, baseline, actions=None, rewards_fn=None):
    """One REINFORCE objective. Samples the actions (and their rewards) when none are given.

    The EMA baseline is updated with this batch's mean reward before the advantage is taken, as the
    source does, so the first batches are not judged against a baseline of zero alone.
    """
    logits, _value, h = model(obs)
    dist = Categorical(logits=logits)
    if actions is None:
        with torch.no_grad():
            actions = dist.sample()
    rewards = rewards_fn(actions)
    wm_pred = model.world_model(h, actions)
    baseline = BASELINE_DECAY * baseline + (1 - BASELINE_DECAY) * rewards.mean().item()
    advantage = rewards - baseline
    policy_loss = -(dist.log_prob(actions) * advantage).mean()
    loss = policy_loss - ENTROPY_COEF * dist.entropy().mean() + WORLD_MODEL_COEF * F.mse_loss(wm_pred, next_obs)
    return loss, rewards, baseline


def apply(optimizer, params, loss):
    optimizer.zero_grad()
    loss.backward()
    nn.utils.clip_grad_norm_(params, MAX_GRAD_NORM)
    optimizer.step()


def blas_library():
    """The BLAS shared object this process loaded. Debian's torch uses whichever libblas.so.3 the system
    provides, and the default one is the unoptimised reference (netlib) BLAS, much slower than OpenBLAS on
    these models, so every result says which one it ran on."""
    with open("/proc/self/maps") as maps:
        paths = {line.split()[-1] for line in maps if "blas" in line.rsplit("/", 1)[-1].lower() and "/" in line}
    # an optimised BLAS may sit behind a libblas.so.3 shim that is mapped too: name the library doing the work
    named = sorted(p for p in paths if any(k in os.path.basename(p).lower() for k in ("openblas", "mkl", "blis", "atlas")))
    return os.path.realpath((named or sorted(paths))[0]) if paths else None


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--updates", type=int, default=1000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args()


def train_loop(args):
    torch.manual_seed(args.seed)
    model = BabyModel()
    params = list(model.parameters())
    optimizer = torch.optim.Adam(params, lr=LR)
    baseline = 0.0
    successes = []
    t0 = time.perf_counter()
    for _ in range(args.updates):
        targets, obs, next_obs = pattern_echo_batch(BATCH)
        loss, rewards, baseline = reinforce_loss(model, obs, next_obs, baseline, rewards_fn=lambda a: (a == targets).float())
        apply(optimizer, params, loss)
        successes.append(rewards.mean().item())
    seconds = time.perf_counter() - t0
    n_params = sum(p.numel() for p in params)
    final = successes[-SUCCESS_WINDOW:]
    return n_params, seconds, sum(final) / len(final)


def train_step_rate(seed, warmup=20, steps=300):
    """The train step alone on one fixed batch, like the TypeScript wmil.baby_model.train_step benchmark."""
    torch.manual_seed(seed)
    model = BabyModel()
    params = list(model.parameters())
    optimizer = torch.optim.Adam(params, lr=LR)
    _, obs, next_obs = pattern_echo_batch(BATCH)
    actions = torch.randint(0, 8, (BATCH,))
    returns = torch.randint(0, 2, (BATCH,)).float()
    for i in range(warmup + steps):
        if i == warmup:
            t0 = time.perf_counter()
        loss, _, _ = reinforce_loss(model, obs, next_obs, 0.0, actions=actions, rewards_fn=lambda _a: returns)
        apply(optimizer, params, loss)
    return steps / (time.perf_counter() - t0)


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    n_params, seconds, final_success = train_loop(args)
    if n_params != EXPECTED_PARAMETERS:
        print(f"BabyModel has {n_params} parameters, expected {EXPECTED_PARAMETERS}", file=sys.stderr)
    else:
        print(f"BabyModel parameters: {n_params}", file=sys.stderr)
    step_rate = train_step_rate(args.seed)
    print(
        json.dumps(
            {
                "algo": "reinforce",
                "model": "BabyModel",
                "env": "PatternEcho",
                "parameters": n_params,
                "updates": args.updates,
                "batch": BATCH,
                "seconds": seconds,
                "updates_per_s": args.updates / seconds,
                "episodes_per_s": args.updates * BATCH / seconds,
                "final_success": final_success,
                "train_step_updates_per_s": step_rate,
                "threads": args.threads,
                "seed": args.seed,
                "torch": torch.__version__,
                "blas": blas_library(),
            }
        )
    )


if __name__ == "__main__":
    main()
