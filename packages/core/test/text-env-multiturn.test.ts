import { describe, expect, it } from 'vitest';
import { type MultiTurnTextTask, type Rng, TextEnv, type TextTask } from '../src';

/** Count up to a drawn goal with "inc"; "stop" gives up (done, no success); anything else is invalid. */
interface Counter {
  prompt: string;
  goal: number;
  at: number;
}
const counter: MultiTurnTextTask<Counter> = {
  name: 'Counter',
  rewardComponents: ['goal', 'progress'],
  numLevels: 1,
  draw: (rng: Rng) => {
    const goal = 2 + rng.int(3);
    return { prompt: `Reach ${goal}.\n>`, goal, at: 0 };
  },
  act: (p, action) => {
    const a = action.trim();
    if (a === 'stop') return { reward: { goal: 0, progress: 0 }, success: false, parsed: a, observation: '\nStopped.', done: true };
    if (a !== 'inc')
      return { reward: { goal: 0, progress: 0 }, success: false, parsed: null, observation: '\nUnknown action.\n>', done: false };
    p.at++;
    const won = p.at === p.goal;
    return { reward: { goal: won ? 1 : 0, progress: 0.1 }, success: won, parsed: a, observation: `\nAt ${p.at}.\n>`, done: won };
  },
};

describe('TextEnv with a multi-turn task', () => {
  it('shows the conversation so far as each next prompt and terminates when the task is done', () => {
    const env = new TextEnv(counter, 10);
    const first = env.reset(1);
    const goal = (env.current as Counter).goal;
    let prompt = first;
    for (let i = 1; i < goal; i++) {
      const s = env.step(' inc');
      expect(s).toMatchObject({ terminated: false, truncated: false, success: false, observation: `\nAt ${i}.\n>` });
      expect(s.prompt).toBe(`${prompt} inc\nAt ${i}.\n>`);
      prompt = s.prompt;
    }
    const last = env.step(' inc');
    expect(last).toMatchObject({ terminated: true, truncated: false, success: true, prompt: '', reward: { goal: 1, progress: 0.1 } });
    expect(() => env.step(' inc')).toThrow(/call reset first/);
  });

  it('truncates at maxEpisodeSteps when the task is not done, and terminates (only) when it is done on that step', () => {
    const env = new TextEnv(counter, 3);
    env.reset(1);
    expect(env.step('wait')).toMatchObject({ terminated: false, truncated: false, observation: '\nUnknown action.\n>' });
    env.step('wait');
    expect(env.step('wait')).toMatchObject({ terminated: false, truncated: true, prompt: '' });
    const short = new TextEnv(counter, 1);
    short.reset(1);
    expect(short.step('stop')).toMatchObject({ terminated: true, truncated: false });
  });

  it('restores a snapshot mid-episode, conversation included', () => {
    const env = new TextEnv(counter, 10);
    env.reset(3);
    env.step(' inc');
    const saved = env.snapshot();
    const a = env.step('x');
    env.restore(saved);
    expect(env.step('x')).toEqual(a);
  });

  it('leaves single-turn tasks as they were: same prompt on a retry, no observation', () => {
    const echo: TextTask<{ prompt: string }> = {
      name: 'Echo',
      rewardComponents: ['correct'],
      numLevels: 1,
      draw: () => ({ prompt: 'Say yes:' }),
      verify: (_p, c) => ({ reward: { correct: c.trim() === 'yes' ? 1 : 0 }, success: c.trim() === 'yes', parsed: c.trim() }),
    };
    const env = new TextEnv(echo, 2);
    env.reset(0);
    expect(env.step('no')).toMatchObject({ prompt: 'Say yes:', observation: '', terminated: false, truncated: false });
    expect(env.step('no')).toMatchObject({ prompt: '', terminated: true, truncated: false });
  });
});
