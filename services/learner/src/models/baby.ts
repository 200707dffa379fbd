/**
 * BabyModel, the WMIL phase 1 policy: state encoder, 2-layer transformer core, and action,
 * world-model and value heads. 116,625 parameters at the defaults, named as PyTorch names the
 * source's module tree (encoder.encoder.0.weight, transformer.transformer.layers.0.self_attn..., ...).
 */
import { ConfigError, type Schema } from '@rlmesh/core';
import {
  concat,
  Embedding,
  hookPoint,
  Linear,
  MLP,
  Module,
  squeeze,
  TransformerEncoder,
  TransformerEncoderLayer,
  type Value,
} from '@rlmesh/graph';
import type { ModelSpec, PolicyModel } from '../registry';

export interface BabyModelConfig {
  stateDim: number;
  numActions: number;
  hiddenDim: number;
  numLayers: number;
  numHeads: number;
  ffDim: number;
  dropout: number;
}

export const BABY_DEFAULTS: BabyModelConfig = {
  stateDim: 8,
  numActions: 8,
  hiddenDim: 64,
  numLayers: 2,
  numHeads: 4,
  ffDim: 256,
  dropout: 0,
};

/** nn.Sequential(Linear(state, h), ReLU, Linear(h, h)) under the attribute `encoder`. */
class StateEncoder extends Module {
  readonly encoder: MLP;
  constructor(stateDim: number, hidden: number) {
    super();
    this.encoder = this.child('encoder', new MLP([stateDim, hidden, hidden], 'relu'));
  }
  forward(x: Value): Value {
    return this.encoder.forward(x);
  }
}

class TransformerCore extends Module {
  readonly transformer: TransformerEncoder;
  constructor(c: BabyModelConfig) {
    super();
    this.transformer = this.child(
      'transformer',
      new TransformerEncoder(
        () => new TransformerEncoderLayer(c.hiddenDim, c.numHeads, { dimFeedforward: c.ffDim, dropout: c.dropout }),
        c.numLayers,
      ),
    );
  }
  /**
   * h: [B, H] -> [B, H]. The source runs a length-1 sequence (unsqueeze(1) ... squeeze(1)); passing
   * the rank-2 batch is the same computation with the position axis left out.
   */
  forward(h: Value): Value {
    return this.transformer.forward(h);
  }
}

class ActionHead extends Module {
  readonly fc: Linear;
  constructor(hidden: number, numActions: number) {
    super();
    this.fc = this.child('fc', new Linear(hidden, numActions));
  }
  forward(h: Value): Value {
    return this.fc.forward(h);
  }
}

/** Predicts the RAW next state from (h, action), not an embedding: WMIL phase 1 found embeddings collapse. */
class WorldModelHead extends Module {
  readonly actionEmbed: Embedding;
  readonly predictor: MLP;
  constructor(hidden: number, numActions: number, stateDim: number) {
    super();
    this.actionEmbed = this.child('action_embed', new Embedding(numActions, hidden));
    this.predictor = this.child('predictor', new MLP([2 * hidden, hidden, stateDim], 'relu'));
  }
  forward(h: Value, action: Value): Value {
    return this.predictor.forward(concat([h, this.actionEmbed.forward(action)], -1));
  }
}

class ValueHead extends Module {
  readonly fc: MLP;
  constructor(hidden: number) {
    super();
    this.fc = this.child('fc', new MLP([hidden, hidden / 2, 1], 'relu'));
  }
  forward(h: Value): Value {
    return squeeze(this.fc.forward(h), [-1]);
  }
}

export class BabyModel extends Module {
  readonly encoder: StateEncoder;
  readonly transformer: TransformerCore;
  readonly actionHead: ActionHead;
  readonly worldModel: WorldModelHead;
  readonly valueHead: ValueHead;

  constructor(readonly config: BabyModelConfig = BABY_DEFAULTS) {
    super();
    const c = config;
    this.encoder = this.child('encoder', new StateEncoder(c.stateDim, c.hiddenDim));
    this.transformer = this.child('transformer', new TransformerCore(c));
    this.actionHead = this.child('action_head', new ActionHead(c.hiddenDim, c.numActions));
    this.worldModel = this.child('world_model', new WorldModelHead(c.hiddenDim, c.numActions, c.stateDim));
    this.valueHead = this.child('value_head', new ValueHead(c.hiddenDim));
  }

  /**
   * The shared trunk: state [B, S] -> h [B, H]. Hooks: hook_embed (the encoded state) and the core's
   * blocks.<l>.* (TransformerEncoderLayer's; one position, so no hook_pattern).
   */
  trunk(state: Value): Value {
    return this.transformer.forward(hookPoint('hook_embed', this.encoder.forward(state)));
  }

  /** Policy logits [B, A] and value [B]; the heads' hooks are action_head.hook_logits and value_head.hook_value. */
  forward(state: Value): { logits: Value; value: Value; hidden: Value } {
    const h = this.trunk(state);
    const logits = hookPoint('action_head.hook_logits', this.actionHead.forward(h));
    return { logits, value: hookPoint('value_head.hook_value', this.valueHead.forward(h)), hidden: h };
  }

  /** Predicted raw next state [B, S] for actions [B] (int64), from a trunk output. */
  predictNext(h: Value, actions: Value): Value {
    return this.worldModel.forward(h, actions);
  }
}

const BABY_OPTIONS = {
  hidden_dim: { kind: 'int', default: 64, min: 2, max: 4096 },
  num_layers: { kind: 'int', default: 2, min: 1, max: 64 },
  num_heads: { kind: 'int', default: 4, min: 1, max: 64 },
  ff_dim: { kind: 'int', default: 256, min: 1, max: 65536 },
  dropout: { kind: 'number', default: 0, min: 0, max: 0.99 },
} as const satisfies Schema;

/** BabyModel as a registered policy: discrete actions, with the world-model head REINFORCE trains. */
export const babyModel: ModelSpec<typeof BABY_OPTIONS> = {
  id: 'baby',
  description: 'WMIL BabyModel: state encoder, transformer core, action / world-model / value heads',
  options: BABY_OPTIONS,
  build(o, ctx): PolicyModel {
    if (ctx.distribution.kind !== 'categorical')
      throw new ConfigError('model.id', `baby needs a Discrete action space, the env's is ${ctx.actionSpace.kind}`);
    if (o.hidden_dim % o.num_heads !== 0)
      throw new ConfigError('model.num_heads', `must divide model.hidden_dim (${o.hidden_dim}), got ${o.num_heads}`);
    const obsDim = ctx.observationSpace.size;
    const module = new BabyModel({
      stateDim: obsDim,
      numActions: ctx.distribution.n,
      hiddenDim: o.hidden_dim,
      numLayers: o.num_layers,
      numHeads: o.num_heads,
      ffDim: o.ff_dim,
      dropout: o.dropout,
    });
    return {
      module,
      name: 'BabyModel',
      distribution: ctx.distribution,
      obsDim,
      forward: (obs) => module.forward(obs),
      predictNext: (h, a) => module.predictNext(h, a),
    };
  },
};
