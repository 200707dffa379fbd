/**
 * An SAE's configuration. Keys and defaults are SAELens's (its training configs for the standard,
 * topk and jumprelu architectures), so a config written for one reads the same in the other; where
 * rlmesh differs, the doc says so.
 */
import { ConfigError, type Infer, type Schema, validate } from '@rlmesh/core';

export const SAE_ARCHITECTURES = ['standard', 'topk', 'jumprelu'] as const;
export type SaeArchitecture = (typeof SAE_ARCHITECTURES)[number];

export const saeSchema = {
  architecture: { kind: 'string', oneOf: SAE_ARCHITECTURES, default: 'standard', doc: 'standard = ReLU + L1' },
  d_in: { kind: 'int', min: 1, doc: 'width of the activations the SAE reads' },
  d_sae: { kind: 'int', min: 1, doc: 'number of latents' },
  apply_b_dec_to_input: { kind: 'bool', default: true, doc: 'encode x - b_dec rather than x' },
  decoder_init_norm: { kind: 'number', min: 0, exclusiveMin: true, default: 0.1, doc: 'norm of each initial decoder row' },
  normalize_sae_decoder: {
    kind: 'bool',
    default: false,
    doc: 'keep decoder rows at unit norm: the gradient parallel to each row is removed and rows are renormalised after every step',
  },
  b_dec_init_method: { kind: 'string', oneOf: ['zeros', 'mean', 'geometric_median'], default: 'geometric_median' },
  normalize_activations: {
    kind: 'string',
    oneOf: ['none', 'expected_average_only_in'],
    default: 'expected_average_only_in',
    doc: 'scale inputs so their mean norm is sqrt(d_in); the factor is folded into the saved weights',
  },
  // standard (ReLU + L1)
  l1_coefficient: { kind: 'number', min: 0, default: 1 },
  l1_warm_up_steps: { kind: 'int', min: 0, default: 0, doc: 'the L1 coefficient ramps linearly from 0 over this many steps' },
  lp_norm: { kind: 'number', min: 1, default: 1 },
  scale_sparsity_penalty_by_decoder_norm: {
    kind: 'bool',
    default: true,
    doc: 'weight each latent in the penalty by its decoder row norm (SAELens defaults to false; rlmesh to true, so the penalty cannot be dodged by shrinking codes and growing rows)',
  },
  // topk
  k: { kind: 'int', min: 1, default: 100 },
  aux_loss_coefficient: { kind: 'number', min: 0, default: 1, doc: 'weight of the AuxK loss that revives dead latents' },
  // jumprelu
  jumprelu_init_threshold: { kind: 'number', min: 0, exclusiveMin: true, default: 0.001 },
  jumprelu_bandwidth: { kind: 'number', min: 0, exclusiveMin: true, default: 0.001 },
  l0_coefficient: { kind: 'number', min: 0, default: 1 },
  l0_warm_up_steps: { kind: 'int', min: 0, default: 0 },
  // training
  lr: { kind: 'number', min: 0, exclusiveMin: true, default: 3e-4 },
  adam_beta1: { kind: 'number', min: 0, max: 1, default: 0.9 },
  adam_beta2: { kind: 'number', min: 0, max: 1, default: 0.999 },
  dead_feature_window: { kind: 'int', min: 1, default: 1000, doc: 'steps without firing after which a latent counts as dead' },
  seed: { kind: 'int', min: 0, default: 42 },
} as const satisfies Schema;

export type SaeConfig = Infer<typeof saeSchema>;

/** Validates an SAE config; errors name the key and the rule. */
export function saeConfig(value: unknown): SaeConfig {
  const cfg = validate(saeSchema, value);
  if (cfg.architecture === 'topk' && cfg.k > cfg.d_sae) throw new ConfigError('k', `must be <= d_sae (${cfg.d_sae}), got ${cfg.k}`);
  return cfg;
}
