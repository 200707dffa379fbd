/**
 * What a text-env run's actors play: core's SequenceCollector (the text actor loop the embedded
 * sequence run drives) generating through the policy service's Generate, each rollout encoded as a
 * sequence chunk (token ids, completion masks, behaviour log-probs, group ids, the policy version).
 * Prompts are encoded and completions decoded with the run's published tokenizer, and sampled as
 * the run's algorithm says (the same sequenceSampling the learner reads), so every replica plays
 * exactly what the learner expects to decode. A multi-turn env is played as conversations (one
 * row per turn), as the embedded run plays it (learner's textCollector), its episodes cut where the
 * conversation leaves no room in the published model's context for another turn.
 */
import { sequenceRows } from '@rlmesh/core';
import { encodePrompt, loadPointerTokenizer, parseSequenceRunConfig, sequenceSampling, textCollector } from '@rlmesh/learner';
import { type Bus, encodeSequenceRollout, keys, parsePolicyPointer } from '@rlmesh/mesh';
import type { RunAnnouncement } from '@rlmesh/proto';
import type { ChunkSource } from './actor';
import type { PolicyClient } from './policy-client';

/** Reads what every actor of the run shares (config, tokenizer); returns a maker of one actor's source. */
export async function sequenceSources(run: RunAnnouncement, bus: Bus, policy: PolicyClient): Promise<(actorId: string) => ChunkSource> {
  if (!policy.generator) throw new Error(`run ${run.runId} has a text env (${run.envId}); this replica's policy client cannot generate`);
  const cfg = parseSequenceRunConfig(JSON.parse(run.config));
  // The learner publishes the first version (with its tokenizer) before it announces the run.
  const value = await bus.kv.get(keys.policy(run.runId));
  if (!value) throw new Error(`run ${run.runId} is announced but has no published policy`);
  const pointer = parsePolicyPointer(value);
  if (!pointer.tokenizer || !pointer.modelConfig) throw new Error(`run ${run.runId}: its policy publishes no tokenizer or model_config`);
  const model = JSON.parse(pointer.modelConfig) as {
    vocab_size?: unknown;
    eos_token_id?: unknown;
    n_positions?: unknown;
    max_position_embeddings?: unknown;
  };
  const tokenizer = await loadPointerTokenizer(bus, run.runId, pointer.tokenizer, Number(model.vocab_size));
  // A tokenizer.json holds no special-token roles; the model's config names its EOS.
  const eos = Number(model.eos_token_id);
  if (!Number.isInteger(eos) || eos < 0) throw new Error(`run ${run.runId}: its model_config has no eos_token_id; completions end with it`);
  const sampling = sequenceSampling(cfg, eos);
  // GPT-2 names its context n_positions, Llama and Qwen2 max_position_embeddings.
  const context = Number(model.n_positions ?? model.max_position_embeddings);
  if (!Number.isInteger(context) || context < 1) throw new Error(`run ${run.runId}: its model_config has no context length`);
  const codec = {
    encode: (text: string) => encodePrompt(tokenizer, text),
    decode: (ids: readonly number[]) => tokenizer.decodeCompletion(ids),
  };
  return (actorId) => {
    const collector = textCollector(cfg, { codec, actorId, sampling, context });
    let minVersion = 0;
    const generate = policy.generator?.(run.runId, () => minVersion);
    if (!generate) throw new Error(`run ${run.runId}: this replica's policy client cannot generate`);
    return {
      get sequence() {
        return collector.sequence;
      },
      // Text envs have one level.
      setLevel: () => undefined,
      play: async (version) => {
        minVersion = version;
        const r = await collector.collect(generate);
        return {
          chunk: encodeSequenceRollout(run.runId, r),
          steps: sequenceRows(r),
          sequence: r.sequence,
          policyVersion: r.policyVersion,
        };
      },
    };
  };
}
