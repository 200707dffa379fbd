"""PyTorch CPU reference for the PPO benchmarks: mirrors CleanRL's ppo.py (classic control, CartPole-v1).

Same agent (separate 4-64-64 Tanh actor and critic, orthogonal init), same hyper-parameters (4 envs x 128
steps, 4 epochs of 4 minibatches, clipped policy and value losses, Adam 2.5e-4 annealed linearly to 0),
and the same timing as CleanRL's SPS (the whole loop, rollout and update). Gymnasium is not installed
here, so CartPole-v1 and the 0.x SyncVectorEnv autoreset are re-implemented below to the same dynamics
and seeding. Prints one JSON line on stdout; run it with /usr/bin/python3 (the interpreter with torch).
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
import math  # noqa: E402
import random  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
from torch.distributions.categorical import Categorical  # noqa: E402


class CartPoleVec:
    """N independent CartPole-v1 copies behind the 0.x SyncVectorEnv contract.

    Each copy owns a PCG64 generator seeded with seed + i, as Gymnasium's vector reset(seed=seed) does, so
    the initial states are those Gymnasium would draw. The state stays float64 (Gymnasium integrates in
    Python floats) and only the returned observation is float32. A finished copy is reset in the same
    step and the returned observation is the reset one, as in Gymnasium 0.x.
    """

    gravity = 9.8
    masscart = 1.0
    masspole = 0.1
    total_mass = masspole + masscart
    length = 0.5  # half the pole's length
    polemass_length = masspole * length
    force_mag = 10.0
    tau = 0.02
    theta_threshold = 12 * 2 * math.pi / 360
    x_threshold = 2.4
    max_episode_steps = 500

    def __init__(self, num_envs):
        self.num_envs = num_envs
        self.state = np.zeros((num_envs, 4), dtype=np.float64)
        self.elapsed = np.zeros(num_envs, dtype=np.int64)
        self.rngs = [np.random.default_rng() for _ in range(num_envs)]
        # RecordEpisodeStatistics' running sums, so finished episodes can be reported
        self.ep_return = np.zeros(num_envs, dtype=np.float64)
        self.ep_length = np.zeros(num_envs, dtype=np.int64)

    def _reset_one(self, i):
        self.state[i] = self.rngs[i].uniform(low=-0.05, high=0.05, size=(4,))
        self.elapsed[i] = 0
        self.ep_return[i] = 0.0
        self.ep_length[i] = 0

    def reset(self, seed):
        self.rngs = [np.random.default_rng(seed + i) for i in range(self.num_envs)]
        for i in range(self.num_envs):
            self._reset_one(i)
        return self.state.astype(np.float32)

    def step(self, actions):
        s = self.state
        x, x_dot, theta, theta_dot = s[:, 0], s[:, 1], s[:, 2], s[:, 3]
        force = np.where(actions == 1, self.force_mag, -self.force_mag)
        costheta = np.cos(theta)
        sintheta = np.sin(theta)
        temp = (force + self.polemass_length * theta_dot**2 * sintheta) / self.total_mass
        thetaacc = (self.gravity * sintheta - costheta * temp) / (
            self.length * (4.0 / 3.0 - self.masspole * costheta**2 / self.total_mass)
        )
        xacc = temp - self.polemass_length * thetaacc * costheta / self.total_mass
        # explicit Euler, positions first from the old velocities (Gymnasium's "euler" integrator)
        new_state = np.stack(
            [x + self.tau * x_dot, x_dot + self.tau * xacc, theta + self.tau * theta_dot, theta_dot + self.tau * thetaacc],
            axis=1,
        )
        self.state = new_state
        nx, ntheta = new_state[:, 0], new_state[:, 2]
        terminated = (nx < -self.x_threshold) | (nx > self.x_threshold) | (ntheta < -self.theta_threshold) | (
            ntheta > self.theta_threshold
        )
        self.elapsed += 1
        truncated = self.elapsed >= self.max_episode_steps
        # CartPole-v1 pays 1 on every step, the terminating one included
        rewards = np.ones(self.num_envs, dtype=np.float32)
        self.ep_return += rewards
        self.ep_length += 1
        finished = []
        for i in np.nonzero(terminated | truncated)[0]:
            finished.append((float(self.ep_return[i]), int(self.ep_length[i])))
            self._reset_one(i)
        return self.state.astype(np.float32), rewards, terminated, truncated, finished


def layer_init(layer, std=np.sqrt(2), bias_const=0.0):
    torch.nn.init.orthogonal_(layer.weight, std)
    torch.nn.init.constant_(layer.bias, bias_const)
    return layer


class Agent(nn.Module):
    def __init__(self, obs_dim, num_actions):
        super().__init__()
        # critic before actor: construction order decides which random draws each layer gets, as in CleanRL
        self.critic = nn.Sequential(
            layer_init(nn.Linear(obs_dim, 64)),
            nn.Tanh(),
            layer_init(nn.Linear(64, 64)),
            nn.Tanh(),
            layer_init(nn.Linear(64, 1), std=1.0),
        )
        self.actor = nn.Sequential(
            layer_init(nn.Linear(obs_dim, 64)),
            nn.Tanh(),
            layer_init(nn.Linear(64, 64)),
            nn.Tanh(),
            # near-zero logits: the policy starts uniform
            layer_init(nn.Linear(64, num_actions), std=0.01),
        )

    def get_value(self, x):
        return self.critic(x)

    def get_action_and_value(self, x, action=None):
        dist = Categorical(logits=self.actor(x))
        if action is None:
            action = dist.sample()
        return action, dist.log_prob(action), dist.entropy(), self.critic(x)


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
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--total-timesteps", type=int, default=500000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--max-seconds", type=float, default=None, help="stop after the update that passes this wall time")
    a = p.parse_args()
    # CleanRL's defaults for classic control
    a.learning_rate = 2.5e-4
    a.num_envs = 4
    a.num_steps = 128
    a.anneal_lr = True
    a.gamma = 0.99
    a.gae_lambda = 0.95
    a.num_minibatches = 4
    a.update_epochs = 4
    a.norm_adv = True
    a.clip_coef = 0.2
    a.clip_vloss = True
    a.ent_coef = 0.01
    a.vf_coef = 0.5
    a.max_grad_norm = 0.5
    a.target_kl = None
    a.batch_size = a.num_envs * a.num_steps
    a.minibatch_size = a.batch_size // a.num_minibatches
    a.num_iterations = a.total_timesteps // a.batch_size
    return a


def subsample(points, limit):
    if len(points) <= limit:
        return points
    # evenly spaced, keeping the last episode so the tail of the curve is always present
    idx = np.linspace(0, len(points) - 1, limit).round().astype(int)
    return [points[i] for i in idx]


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)

    envs = CartPoleVec(args.num_envs)
    obs_dim, num_actions = 4, 2
    agent = Agent(obs_dim, num_actions)
    optimizer = torch.optim.Adam(agent.parameters(), lr=args.learning_rate, eps=1e-5)

    obs = torch.zeros((args.num_steps, args.num_envs, obs_dim))
    actions = torch.zeros((args.num_steps, args.num_envs))
    logprobs = torch.zeros((args.num_steps, args.num_envs))
    rewards = torch.zeros((args.num_steps, args.num_envs))
    dones = torch.zeros((args.num_steps, args.num_envs))
    values = torch.zeros((args.num_steps, args.num_envs))

    returns_log = []
    global_step = 0
    updates = 0
    start_time = time.time()
    next_obs = torch.Tensor(envs.reset(seed=args.seed))
    next_done = torch.zeros(args.num_envs)

    for iteration in range(1, args.num_iterations + 1):
        if args.anneal_lr:
            frac = 1.0 - (iteration - 1.0) / args.num_iterations
            optimizer.param_groups[0]["lr"] = frac * args.learning_rate

        for step in range(args.num_steps):
            global_step += args.num_envs
            obs[step] = next_obs
            dones[step] = next_done
            with torch.no_grad():
                action, logprob, _, value = agent.get_action_and_value(next_obs)
                values[step] = value.flatten()
            actions[step] = action
            logprobs[step] = logprob
            o, r, term, trunc, finished = envs.step(action.numpy())
            # like CleanRL, a time-limit truncation is treated as a terminal (no bootstrap from final_observation)
            rewards[step] = torch.from_numpy(r)
            next_obs = torch.from_numpy(o)
            next_done = torch.from_numpy(np.logical_or(term, trunc).astype(np.float32))
            for ep_return, _ in finished:
                returns_log.append((global_step, ep_return))

        with torch.no_grad():
            next_value = agent.get_value(next_obs).reshape(1, -1)
            advantages = torch.zeros_like(rewards)
            lastgaelam = 0
            for t in reversed(range(args.num_steps)):
                if t == args.num_steps - 1:
                    nextnonterminal = 1.0 - next_done
                    nextvalues = next_value
                else:
                    nextnonterminal = 1.0 - dones[t + 1]
                    nextvalues = values[t + 1]
                delta = rewards[t] + args.gamma * nextvalues * nextnonterminal - values[t]
                advantages[t] = lastgaelam = delta + args.gamma * args.gae_lambda * nextnonterminal * lastgaelam
            returns = advantages + values

        b_obs = obs.reshape((-1, obs_dim))
        b_logprobs = logprobs.reshape(-1)
        b_actions = actions.reshape(-1)
        b_advantages = advantages.reshape(-1)
        b_returns = returns.reshape(-1)
        b_values = values.reshape(-1)

        b_inds = np.arange(args.batch_size)
        for _epoch in range(args.update_epochs):
            np.random.shuffle(b_inds)
            for start in range(0, args.batch_size, args.minibatch_size):
                mb_inds = b_inds[start : start + args.minibatch_size]
                _, newlogprob, entropy, newvalue = agent.get_action_and_value(b_obs[mb_inds], b_actions.long()[mb_inds])
                logratio = newlogprob - b_logprobs[mb_inds]
                ratio = logratio.exp()
                with torch.no_grad():
                    approx_kl = ((ratio - 1) - logratio).mean()

                mb_advantages = b_advantages[mb_inds]
                if args.norm_adv:
                    mb_advantages = (mb_advantages - mb_advantages.mean()) / (mb_advantages.std() + 1e-8)

                pg_loss1 = -mb_advantages * ratio
                pg_loss2 = -mb_advantages * torch.clamp(ratio, 1 - args.clip_coef, 1 + args.clip_coef)
                pg_loss = torch.max(pg_loss1, pg_loss2).mean()

                newvalue = newvalue.view(-1)
                if args.clip_vloss:
                    v_loss_unclipped = (newvalue - b_returns[mb_inds]) ** 2
                    v_clipped = b_values[mb_inds] + torch.clamp(newvalue - b_values[mb_inds], -args.clip_coef, args.clip_coef)
                    v_loss_clipped = (v_clipped - b_returns[mb_inds]) ** 2
                    v_loss = 0.5 * torch.max(v_loss_unclipped, v_loss_clipped).mean()
                else:
                    v_loss = 0.5 * ((newvalue - b_returns[mb_inds]) ** 2).mean()

                loss = pg_loss - args.ent_coef * entropy.mean() + v_loss * args.vf_coef
                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(agent.parameters(), args.max_grad_norm)
                optimizer.step()

            if args.target_kl is not None and approx_kl > args.target_kl:
                break
        updates += 1
        if args.max_seconds is not None and time.time() - start_time >= args.max_seconds:
            break

    seconds = time.time() - start_time
    last = [r for _, r in returns_log[-20:]]
    print(
        json.dumps(
            {
                "algo": "ppo",
                "env": "CartPole-v1",
                "env_steps": global_step,
                "seconds": seconds,
                "env_steps_per_s": global_step / seconds,
                "updates": updates,
                "threads": args.threads,
                "seed": args.seed,
                "torch": torch.__version__,
                "blas": blas_library(),
                "episodes": len(returns_log),
                "returns": [[s, r] for s, r in subsample(returns_log, 2000)],
                "final_mean_return_20": float(np.mean(last)) if last else None,
            }
        )
    )


if __name__ == "__main__":
    main()
