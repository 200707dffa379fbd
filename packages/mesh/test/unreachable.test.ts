import { describe, expect, it } from 'vitest';
import { unreachableReason } from '../src/client';

// The details grpc-js 1.14 gave on this machine for each case (the client's UNAVAILABLE status).
const seen = (last: string) => `No connection established. Last error: ${last}. Resolution note: `;

describe('unreachableReason', () => {
  it('tells a TLS failure from nobody listening and from a dropped plaintext connection', () => {
    expect(unreachableReason(seen('Error: unable to verify the first certificate'))).toEqual({
      tls: true,
      reason: "TLS failed: unable to verify the first certificate (check --tls-ca / --tls-cert / --tls-key against the server's)",
    });
    const wrongVersion = seen(
      'Error: 804C6670097F0000:error:0A00010B:SSL routines:ssl3_get_record:wrong version number:../deps/openssl/openssl/ssl/record/ssl3_record.c:350:\n',
    );
    expect(unreachableReason(wrongVersion)).toEqual({
      tls: true,
      reason:
        "TLS failed: TLS was spoken to a server that does not serve TLS (check --tls-ca / --tls-cert / --tls-key against the server's)",
    });
    expect(unreachableReason(seen('Error: connect ECONNREFUSED 127.0.0.1:1'))).toEqual({ tls: false, reason: 'nothing listens there' });
    expect(unreachableReason(seen('Failed to connect (2026-12-02T02:57:32.772Z)'))).toEqual({
      tls: false,
      reason: 'it closed the connection; if it serves TLS, give --tls-ca',
    });
    expect(unreachableReason('Deadline exceeded')).toEqual({ tls: false, reason: 'Deadline exceeded' });
  });
});
