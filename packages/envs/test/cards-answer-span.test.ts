/**
 * The verifier's answer position: answerSpan points at the characters parseAnswer reads, for answers
 * alone and for worked lines, so analysis that scores a model on those characters scores the answer.
 */
import { describe, expect, it } from 'vitest';
import { answerSpan, buildCardsDatasets, parseAnswer } from '../src';

describe('card game: where the answer is', () => {
  it('spans the token parseAnswer reads', () => {
    const cases: [string, string][] = [
      [' 17', '17'],
      ['\n\n -4\nRule: more', '-4'],
      [' 007.', '007'],
      [' RED 3 = 3 - BLUE 2 = 1, ODD\nRule: more', 'ODD'],
      [' - RED 3 = -3', '-3'],
      [' RED 3 = 3 + RED 5 = 8 > 7, big.', 'big'],
      [' BLUE 2 = 2 + BLUE 9 = 11 <= 16, SMALL', 'SMALL'],
      [' BLUE 9 = 9', '9'],
    ];
    for (const [completion, token] of cases) {
      const s = answerSpan(completion);
      expect(s).not.toBeNull();
      expect(s?.token).toBe(token);
      expect(completion.slice(s?.start, s?.end)).toBe(token);
    }
    expect(answerSpan(' BLUE 9 = 9')?.start).toBe(10);
    for (const none of ['   ', ' RED 3 = ', ' 17abc']) expect(answerSpan(none)).toBeNull();
  });

  it('ends every worked and answer-only completion of the data with the answer', () => {
    for (const completion of ['worked', 'answer'] as const)
      for (const set of buildCardsDatasets({ seed: 2, nTrain: 0, nVal: 0, nTest: 50, completion }))
        for (const ex of set.examples) {
          const s = answerSpan(ex.completion);
          expect(s?.end).toBe(ex.completion.length);
          expect(parseAnswer(ex.completion)).toBe(ex.answer);
        }
  });
});
