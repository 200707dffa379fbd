/**
 * The actor-critic MLP of CleanRL's ppo.py (classic control) and ppo_continuous_action.py: separate
 * actor and critic networks of `num_layers` hidden layers, and for Box actions a state-independent
 * log standard deviation. Parameter names follow CleanRL's Agent: `critic.0.weight`, ...,
 * `actor.4.weight` (discrete) or `actor_mean.4.weight` and `actor_logstd` [1, D] (continuous).
 * With `ortho_init`, weights are orthogonal with gain sqrt(2), the actor's last layer 0.01 and the
 * critic's 1.0, biases 0 (CleanRL's layer_init).
 */
import type { Schema } from '@rlmesh/core';
import { type Activation, add, init, MLP, Module, squeeze, type Value, zerosLike } from '@rlmesh/graph';
import type { ModelSpec, PolicyModel } from '../registry';

const OPTIONS = {
  hidden_dim: { kind: 'int', default: 64, min: 1, max: 65536 },
  num_layers: { kind: 'int', default: 2, min: 1, max: 16, doc: 'hidden layers of the actor and of the critic' },
  activation: { kind: 'string', default: 'tanh', oneOf: ['tanh', 'relu', 'gelu'] },
  ortho_init: { kind: 'bool', default: true },
  log_std_init: { kind: 'number', default: 0, doc: 'initial log standard deviation (Box actions)' },
} as const satisfies Schema;

class ActorCritic extends Module {
  readonly critic: MLP;
  readonly actor: MLP;
  constructor(
    obsDim: number,
    outDim: number,
    readonly gaussian: boolean,
    o: { hidden_dim: number; num_layers: number; activation: string; ortho_init: boolean; log_std_init: number },
  ) {
    super();
    const hidden = new Array(o.num_layers).fill(o.hidden_dim);
    const act = o.activation as Activation;
    this.critic = this.child('critic', new MLP([obsDim, ...hidden, 1], act));
    this.actor = this.child(gaussian ? 'actor_mean' : 'actor', new MLP([obsDim, ...hidden, outDim], act));
    if (gaussian) this.register('actor_logstd', [1, outDim], () => init.constant([1, outDim], o.log_std_init));
    if (o.ortho_init) {
      for (const [net, last] of [
        [this.critic, 1.0],
        [this.actor, 0.01],
      ] as const) {
        net.layers.forEach((layer, i) => {
          const gain = i + 1 === net.layers.length ? last : Math.SQRT2;
          layer.reinit('weight', (r) => init.orthogonal([layer.outFeatures, layer.inFeatures], r, gain));
          layer.reinit('bias', () => init.zeros([layer.outFeatures]));
        });
      }
    }
  }

  forward(obs: Value): { out: Value; value: Value; logStd?: Value } {
    const out = this.actor.forward(obs);
    const value = squeeze(this.critic.forward(obs), [-1]);
    // [1, D] broadcast to the batch: the policy program's log_std output is [B, D].
    const logStd = this.gaussian ? add(zerosLike(out), this.param('actor_logstd')) : undefined;
    return { out, value, logStd };
  }
}

export const mlpActorCritic: ModelSpec<typeof OPTIONS> = {
  id: 'mlp_actor_critic',
  description: "CleanRL's PPO agent: separate actor and critic MLPs; categorical or diagonal Gaussian",
  options: OPTIONS,
  build(o, ctx): PolicyModel {
    const d = ctx.distribution;
    const gaussian = d.kind === 'gaussian';
    const outDim = d.kind === 'gaussian' ? d.dim : d.kind === 'categorical' ? d.n : d.nvec.reduce((a, b) => a + b, 0);
    const obsDim = ctx.observationSpace.size;
    const module = new ActorCritic(obsDim, outDim, gaussian, o);
    return {
      module,
      name: 'MlpActorCritic',
      distribution: d,
      obsDim,
      forward: (obs) => {
        const { out, value, logStd } = module.forward(obs);
        return gaussian ? { mean: out, logStd, value } : { logits: out, value };
      },
    };
  },
};
