/**
 * The pipeline's initial model: a small Llama-architecture causal LM with freshly drawn weights and a
 * byte-level BPE trained on the demonstrations' text, written as a Hugging Face Llama directory that
 * `rlmesh sft` fine-tunes (init_from) and `rlmesh eval` scores as the baseline. Drawing it from a
 * seed in a stage of its own keeps the baseline and the SFT start the same weights.
 */
import { readFileSync } from 'node:fs';
import { initParameters, Rng } from '@rlmesh/graph';
import { saveTokenizer, trainBpe } from '@rlmesh/text';

export interface InitialModel {
  /** LLAMA_OPTIONS keys; vocab_size and the special token ids come from the tokenizer. */
  model: Record<string, unknown>;
  vocab_size: number;
  seed: number;
}

/** Every prompt and completion of prompt/completion JSONL files: the BPE's training corpus. */
export function corpusOf(files: readonly string[]): string[] {
  return files.flatMap((f) =>
    readFileSync(f, 'utf8')
      .split('\n')
      .filter((l) => l.trim() !== '')
      .flatMap((l) => {
        const r = JSON.parse(l) as { prompt: string; completion: string };
        return [r.prompt, r.completion];
      }),
  );
}

/** Writes the initial Llama directory; returns its parameter count. */
export async function writeInitialLlama(dir: string, corpus: readonly string[], init: InitialModel): Promise<number> {
  const { LLAMA_OPTIONS, LlamaForCausalLM, checkLlamaConfig, saveLlamaDirectory } = await import('@rlmesh/learner');
  const { validate } = await import('@rlmesh/core');
  const tok = trainBpe(corpus, { vocab_size: init.vocab_size });
  const config = validate(LLAMA_OPTIONS, {
    ...init.model,
    vocab_size: tok.vocabSize,
    bos_token_id: tok.bosId ?? -1,
    eos_token_id: tok.eosId ?? -1,
    pad_token_id: tok.padId ?? -1,
  });
  checkLlamaConfig(config);
  const model = new LlamaForCausalLM(config);
  await saveLlamaDirectory(dir, config, initParameters(model, new Rng(init.seed)));
  saveTokenizer(tok, dir, { modelMaxLength: config.max_position_embeddings });
  return model.parameterCount();
}
