import { status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { invalidArgument, MAX_STATUS_DETAILS, toStatus } from '../src/errors';

describe('toStatus', () => {
  it('keeps a short message whole and cuts one that quotes a huge client string', () => {
    expect(toStatus(invalidArgument('run_id', 'must match [a-z]+'))).toEqual({
      code: status.INVALID_ARGUMENT,
      details: 'run_id: must match [a-z]+',
    });
    const huge = toStatus(invalidArgument('env_id', `unknown env "${'x'.repeat(200_000)}"`));
    expect(huge.code).toBe(status.INVALID_ARGUMENT);
    expect(huge.details.length).toBeLessThanOrEqual(MAX_STATUS_DETAILS);
    expect(huge.details).toMatch(/^env_id: unknown env "x+\.\.\. \(\d+ more characters\)$/);
  });

  it('answers INTERNAL for an error that is not a request fault', () => {
    expect(toStatus(new Error('disk full')).code).toBe(status.INTERNAL);
    expect(toStatus(Object.assign(new Error('bad'), { name: 'ConfigError' })).code).toBe(status.INVALID_ARGUMENT);
  });
});
