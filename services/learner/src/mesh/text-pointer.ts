/**
 * What a published GPT-2 policy needs beyond its parameters: the tokenizer.json its pointer names
 * (PolicyPointer.tokenizer) in the object store. The policy service's Generate and the evaluator's
 * text policies both load it here, with the same checks; errors are FAILED_PRECONDITION naming
 * `field` (the request field that chose the run).
 */
import { type Bus, failedPrecondition } from '@rlmesh/mesh';
import { Tokenizer } from '@rlmesh/text';

/** The run's tokenizer.json from the object store, checked to fit the model's vocabulary. */
export async function loadPointerTokenizer(bus: Bus, runId: string, name: string, vocabSize: number, field = 'run_id'): Promise<Tokenizer> {
  const bytes = await bus.objects.get(name);
  if (!bytes) throw failedPrecondition(field, `policy of run "${runId}" names tokenizer "${name}", which is not in the object store`);
  let tokenizer: Tokenizer;
  try {
    tokenizer = Tokenizer.fromJSON(JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes)));
  } catch (e) {
    throw failedPrecondition(field, `policy of run "${runId}" has an unusable tokenizer "${name}": ${(e as Error).message}`);
  }
  if (tokenizer.vocabSize > vocabSize)
    throw failedPrecondition(
      field,
      `policy of run "${runId}": its tokenizer has ${tokenizer.vocabSize} ids, more than the model's vocab_size ${vocabSize}`,
    );
  return tokenizer;
}
