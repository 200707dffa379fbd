/**
 * Text policies on text suites: the episode loop against a policy whose answers are known (so the
 * verdicts can be counted by hand), a tiny GPT-2 directory through `rlmesh eval`, and every refusal:
 * a policy of the wrong kind either way, a missing or unknown tokenizer, a prompt the context cannot
 * hold, a suite asking for test examples that do not exist.
 */
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '@rlmesh/cli';
import { Discrete, type EvaluationResult, makeTextEnv, TokenSequence } from '@rlmesh/core';
import { buildCardsDatasets } from '@rlmesh/envs';
import { ParamLayout } from '@rlmesh/graph';
import { Gpt2LMHeadModel, gpt2ModelConfig, loadGpt2Directory, parseRunConfig, trainEmbedded } from '@rlmesh/learner';
import { createLogger, MemoryBus, publishPolicy, spaceToProto } from '@rlmesh/mesh';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { captureConsole } from '../../../tests/console-capture';
import { evaluate } from '../src/evaluator';
import { checkpointPolicy, PolicyFitError, type TextCompletionOptions, type TextPolicySource } from '../src/policy-source';
import { EvaluatorCore } from '../src/service';
import { BusEvaluationStore } from '../src/store';
import { loadSuite, parseSuite } from '../src/suite';
import { completionSeed } from '../src/text-episodes';
import { CARD_SEED, CARDS_SUITE, tinyGpt2Dir, unknownTokenizer } from './gpt2-fixture';

const SUITES = join(__dirname, '..', '..', '..', 'configs', 'suites');
const out = mkdtempSync(join(tmpdir(), 'rlmesh-eval-text-'));
const file = (name: string, body: string) => {
  const p = join(out, name);
  writeFileSync(p, body);
  return p;
};
const tests = Object.fromEntries(
  buildCardsDatasets({ seed: CARD_SEED, nTrain: 0, nVal: 0, nTest: 16 })
    .filter((s) => s.name.startsWith('test_'))
    .map((s) => [s.split, s.examples]),
);

/** Answers the prompts it was told, writes `fallback` for the rest, and records what it was asked. */
class ScriptedPolicy implements TextPolicySource {
  readonly kind = 'text';
  readonly ref = { label: 'scripted' };
  readonly contextLength = 10_000;
  readonly calls: { prompts: readonly string[]; o: TextCompletionOptions }[] = [];
  constructor(
    private readonly answers: Map<string, string | null>,
    private readonly fallback = ' nonsense',
  ) {}
  promptTokens(prompt: string): number {
    return prompt.length;
  }
  async complete(prompts: readonly string[], o: TextCompletionOptions) {
    this.calls.push({ prompts, o });
    return prompts.map((p) => {
      const a = this.answers.has(p) ? (this.answers.get(p) as string | null) : this.fallback;
      return a === null ? { text: null, error: 'invalid UTF-8 at byte offset 0' } : { text: a };
    });
  }
  async close() {}
}

afterEach(() => {
  vi.restoreAllMocks();
});

let gpt2: string;
let echoCkpt: string;
beforeAll(async () => {
  gpt2 = await tinyGpt2Dir(join(out, 'runs', 'tiny', 'checkpoints', 'step_0'));
  await trainEmbedded(
    parseRunConfig({
      run: { name: 'echo', seed: 4, out_dir: out },
      env: { id: 'PatternEcho', num_envs: 16, num_steps: 1 },
      model: { id: 'mlp_actor_critic', hidden_dim: 8 },
      algo: { name: 'ppo' },
      train: { total_env_steps: 16, threads: 1 },
    }),
  );
  echoCkpt = join(out, 'echo', 'model.safetensors');
});

describe('text episodes', () => {
  it('score each completion with the env verifier: right answers count, wrong, empty and undecodable ones do not', async () => {
    const suite = parseSuite(
      parseSuite({
        name: 'cards-small',
        entries: [{ name: 'id', env: { id: 'CardRules', options: { split: 'id', test_seed: CARD_SEED, test_n: 16 } }, episodes: 12 }],
      }),
    );
    const ex = tests.id;
    // Episodes 0-5 answered right; 6 with a right answer in a bad format (lenient parse: correct, not
    // well-formed); 7 empty (refused by the env); 8 not text; the rest the fallback.
    const answers = new Map<string, string | null>([
      ...ex.slice(0, 6).map((e) => [e.prompt, e.completion] as [string, string]),
      [ex[6].prompt, `${ex[6].completion}\nand more`],
      [ex[7].prompt, ''],
      [ex[8].prompt, null],
    ]);
    const policy = new ScriptedPolicy(answers);
    const r = await evaluate(suite, policy);
    const e = r.environments[0];
    expect(e).toMatchObject({ env_id: 'CardRules', episodes: 12, successes: 7, success_rate: 7 / 12 });
    expect(e.components).toEqual({ correct: 7 / 12, format: 6 / 12 });
    expect(e.returns.mean).toBeCloseTo(13 / 12, 12);
    expect(e.lengths).toMatchObject({ min: 1, max: 1 });
    // One batched call for the wave, prompts in seed order, the entry's default budget, greedy.
    expect(policy.calls).toHaveLength(1);
    expect(policy.calls[0].prompts).toEqual(ex.slice(0, 12).map((x) => x.prompt));
    expect(policy.calls[0].o).toMatchObject({ greedy: true, maxNewTokens: 8 });
  });

  it('give sampled completions one seed per episode and step, the same on every run', async () => {
    const suite = parseSuite({
      name: 's',
      mode: 'sampled',
      entries: [
        {
          name: 'retry',
          env: { id: 'CardRules', options: { split: 'ood_values', test_seed: CARD_SEED, test_n: 16, max_episode_steps: 3 } },
          episodes: 4,
          seed: 2,
          max_new_tokens: 5,
        },
      ],
    });
    const policy = new ScriptedPolicy(new Map());
    const r = await evaluate(suite, policy);
    // Every answer is wrong, so each episode takes its three tries, one batch per try.
    expect(r.environments[0]).toMatchObject({ successes: 0, lengths: { min: 3, max: 3 } });
    expect(policy.calls.map((c) => c.o.seeds)).toEqual([0, 1, 2].map((step) => [2, 3, 4, 5].map((s) => completionSeed(s, step))));
    expect(policy.calls.every((c) => !c.o.greedy && c.o.maxNewTokens === 5)).toBe(true);
    expect(policy.calls[1].prompts).toEqual(tests.ood_values.slice(2, 6).map((e) => e.prompt));
  });

  it('refuse a policy of the other kind, naming the entry', async () => {
    const cards = parseSuite({ name: 'c', entries: [{ name: 'id', env: { id: 'CardRules' }, episodes: 2 }] });
    const action = await checkpointPolicy(echoCkpt);
    try {
      await expect(evaluate(cards, action)).rejects.toThrow(
        new PolicyFitError(
          'id',
          'entry "id" (CardRules) is a text env: it needs a language model (a GPT-2 directory), not an action policy',
        ),
      );
    } finally {
      await action.close();
    }
    const echo = parseSuite({ name: 'e', entries: [{ name: 'echo', env: { id: 'PatternEcho' }, episodes: 2 }] });
    await expect(evaluate(echo, new ScriptedPolicy(new Map()))).rejects.toThrow(
      'entry "echo" (PatternEcho) takes actions: a language model (GPT-2 directory) cannot act in it',
    );
  });

  it('refuse a prompt that leaves the context no room for the token budget', async () => {
    const suite = parseSuite({ name: 'c', entries: [{ name: 'id', env: { id: 'CardRules' }, episodes: 2, max_new_tokens: 9 }] });
    const short = Object.assign(new ScriptedPolicy(new Map()), { contextLength: 60 });
    await expect(evaluate(suite, short)).rejects.toThrow(
      /^entry "id" \(CardRules\): the prompt of episode seed 0 has \d+ tokens; with max_new_tokens 9 it exceeds the model's context of 60$/,
    );
  });

  it('end a conversation that outgrows the context after that turn, scored as it stands', async () => {
    const suite = parseSuite({ name: 'm', entries: [{ name: 'craft', env: { id: 'TextCraft' }, episodes: 3, max_new_tokens: 8 }] });
    const firsts = [0, 1, 2].map((i) => makeTextEnv('TextCraft', {}, 'options').reset(i, { difficulty: 0 }).length);
    // Room for every first prompt, but not for a second turn (the first prompt, a reply and an observation).
    const short = Object.assign(new ScriptedPolicy(new Map()), { contextLength: Math.max(...firsts) + 8 + 2 });
    const r = await evaluate(suite, short);
    expect(short.calls).toHaveLength(1);
    const env = r.environments[0];
    expect(env.lengths.max).toBe(1);
    expect(env.successes).toBe(0);
    // The same suite with room for the whole conversation plays past the first turn.
    const roomy = new ScriptedPolicy(new Map());
    const full = await evaluate(parseSuite({ ...suite, entries: [{ ...suite.entries[0], max_steps: 3 }] }), roomy);
    expect(roomy.calls.length).toBeGreaterThan(1);
    expect(full.environments[0].lengths.max).toBe(3);
  });
});

describe('a text policy published on the bus', () => {
  it('evaluates as the same weights and tokenizer from a directory do, and is refused without a tokenizer', async () => {
    const { config, params } = await loadGpt2Directory(gpt2);
    const layout = new ParamLayout(new Gpt2LMHeadModel(config));
    const bus = new MemoryBus();
    const publish = (run: string, tokenizer?: Uint8Array) =>
      publishPolicy(bus, run, {
        version: 1,
        params: layout.pack(params),
        spec: {
          observationSpace: spaceToProto(new TokenSequence(config.vocab_size, config.n_positions, 0)),
          actionSpace: spaceToProto(new Discrete(config.vocab_size)),
          model: 'gpt2',
          numParameters: layout.total,
        },
        distribution: 'categorical',
        modelConfig: gpt2ModelConfig(config),
        tokenizer,
      });
    await publish('lm', readFileSync(join(gpt2, 'tokenizer.json')));
    await publish('lm-bare');
    const core = new EvaluatorCore({ store: new BusEvaluationStore(bus), bus, logger: createLogger('evaluator', 'error') });
    const viaBus = await core.evaluate({ suite: CARDS_SUITE, policy: { run_id: 'lm' } });
    const viaDir = await core.evaluate({ suite: CARDS_SUITE, policy: { checkpoint: gpt2 } });
    expect(viaBus.policy).toEqual({ run_id: 'lm', version: 1, label: 'lm v1' });
    expect(viaBus.environments).toEqual(viaDir.environments);
    await expect(core.evaluate({ suite: CARDS_SUITE, policy: { run_id: 'lm-bare' } })).rejects.toThrow(
      'policy.run_id: policy of run "lm-bare" publishes no tokenizer; text prompts cannot be encoded without one',
    );
  });
});

describe('rlmesh eval with a GPT-2 directory', () => {
  it('evaluates the shipped cards suite layout end to end and writes the result into the run directory', async () => {
    const io = captureConsole();
    const suite = file('cards-small.yaml', CARDS_SUITE);
    expect(await main(['eval', suite, '--checkpoint', gpt2])).toBe(0);
    expect(io.err).toEqual([]);
    expect(io.out[0]).toMatch(/^rlmesh eval: tiny step_0 on suite cards-small \(greedy\)/);
    expect(io.out[2]).toMatch(/^id\s+ID\s+CardRules\s+8\s+\d+\.\d% \[\d+\.\d%, \d+\.\d%\]\s+\d\.\d\d\s+correct \d\.\d\d, format \d\.\d\d$/);
    expect(io.out[3]).toMatch(/^values\s+OOD\s+CardRules\s+6\s+/);
    const path = io.out[5].replace(/^wrote /, '');
    expect(path.startsWith(join(out, 'runs', 'tiny', 'evaluations'))).toBe(true);
    const r = JSON.parse(readFileSync(path, 'utf8')) as EvaluationResult;
    expect(r.policy).toEqual({ checkpoint: gpt2, label: 'tiny step_0' });
    expect(r.environments.map((e) => [e.name, e.episodes, e.seeds[0], Object.keys(e.components ?? {})])).toEqual([
      ['id', 8, 0, ['correct', 'format']],
      ['values', 6, 4, ['correct', 'format']],
    ]);
    // Greedy decoding is deterministic: the same command gives the same numbers.
    captureConsole();
    const again = join(out, 'again.json');
    expect(await main(['eval', suite, '--checkpoint', gpt2, '--out', again])).toBe(0);
    expect((JSON.parse(readFileSync(again, 'utf8')) as EvaluationResult).environments).toEqual(r.environments);
    // Sampling is seeded per episode and step: the same command draws the same completions.
    const sampled = [join(out, 's1.json'), join(out, 's2.json')];
    for (const f of sampled) expect(await main(['eval', suite, '--checkpoint', gpt2, '--sampled', '--out', f])).toBe(0);
    const [s1, s2] = sampled.map((f) => JSON.parse(readFileSync(f, 'utf8')) as EvaluationResult);
    expect(s1.mode).toBe('sampled');
    expect(s2.environments).toEqual(s1.environments);
  });

  it('parses the shipped cards suite: six splits of 500 test examples', () => {
    const s = loadSuite(join(SUITES, 'cards.yaml'));
    expect(s.entries.map((e) => [e.name, e.split, e.episodes, e.env.options.split, e.env.options.test_seed, e.max_new_tokens])).toEqual(
      ['id', 'ood_composition', 'ood_values', 'ood_colour', 'ood_paraphrase', 'ood_length'].map((x) => [
        x,
        x === 'id' ? 'ID' : 'OOD',
        500,
        x,
        0,
        72,
      ]),
    );
  });

  const noTokenizer = join(out, 'no-tokenizer');
  const badTokenizer = join(out, 'bad-tokenizer');
  const shortContext = join(out, 'short');
  beforeAll(async () => {
    await tinyGpt2Dir(noTokenizer, { tokenizer: false });
    mkdirSync(badTokenizer);
    for (const f of ['config.json', 'model.safetensors']) copyFileSync(join(noTokenizer, f), join(badTokenizer, f));
    unknownTokenizer(badTokenizer);
    await tinyGpt2Dir(shortContext, { nPositions: 40 });
  });

  it.each([
    [
      'an action policy for a text suite',
      () => ['eval', file('c.yaml', CARDS_SUITE), '--checkpoint', echoCkpt],
      /^rlmesh: --checkpoint: entry "id" \(CardRules\) is a text env: it needs a language model \(a GPT-2 directory\), not an action policy$/,
    ],
    [
      'a GPT-2 directory for CartPole',
      () => ['eval', join(SUITES, 'cartpole.yaml'), '--checkpoint', gpt2],
      /^rlmesh: --checkpoint: entry "limit-500" \(CartPole-v1\) takes actions: a language model \(GPT-2 directory\) cannot act in it$/,
    ],
    [
      'a GPT-2 directory without tokenizer files',
      () => ['eval', file('c.yaml', CARDS_SUITE), '--checkpoint', noTokenizer],
      /^rlmesh: --checkpoint: cannot load .*no-tokenizer as a policy: .*no-tokenizer: no tokenizer files \(tokenizer\.json, or vocab\.json \+ merges\.txt\)$/,
    ],
    [
      'a tokenizer.json of an unsupported kind',
      () => ['eval', file('c.yaml', CARDS_SUITE), '--checkpoint', badTokenizer],
      /^rlmesh: --checkpoint: cannot load .*bad-tokenizer as a policy: .*bad-tokenizer: its tokenizer cannot be read: model\.type: Unigram is not supported/,
    ],
    [
      'a context too short for the prompts',
      () => ['eval', file('c.yaml', CARDS_SUITE), '--checkpoint', shortContext],
      /^rlmesh: --checkpoint: entry "id" \(CardRules\): the prompt of episode seed 0 has \d+ tokens; with max_new_tokens 8 it exceeds the model's context of 40$/,
    ],
    [
      'more episodes than the test set holds',
      () => ['eval', file('long.yaml', CARDS_SUITE.replace('episodes: 8', 'episodes: 17')), '--checkpoint', gpt2],
      /^rlmesh: suite .*long\.yaml: entries\[0\]\.episodes: episode seed 16 cannot be reset: reset seed 16: the id test set holds examples 0\.\.15 \(test_n\)$/,
    ],
    [
      'a token budget on a numeric env',
      () => [
        'eval',
        file('budget.yaml', 'name: b\nentries:\n  - { name: a, env: { id: PatternEcho }, episodes: 3, max_new_tokens: 4 }\n'),
        '--checkpoint',
        echoCkpt,
      ],
      /^rlmesh: suite .*budget\.yaml: entries\[0\]\.max_new_tokens: applies to text envs only; PatternEcho takes actions, not completions$/,
    ],
  ])('%s: one line, exit 2', async (_what, argv, message) => {
    const io = captureConsole();
    expect(await main(argv())).toBe(2);
    expect(io.err).toHaveLength(1);
    expect(io.err[0]).toMatch(message);
  });
});
