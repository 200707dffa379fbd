/**
 * Why a gRPC peer could not be reached, in words a user can act on. grpc-js reports every failed
 * connection as UNAVAILABLE "No connection established. Last error: ...": a TLS failure (an unknown
 * CA, TLS spoken to a plaintext server) and nobody listening look alike unless the last error is read.
 */
export function unreachableReason(details: string): { tls: boolean; reason: string } {
  const last = /Last error: (?:Error: )?([^\n]*?)(?:\. Resolution note:.*)?$/s.exec(details)?.[1]?.trim() ?? details.trim();
  if (/certificate|SSL routines|wrong version number|handshake|tlsv1 alert|self.signed/i.test(last)) {
    const why = /wrong version number/i.test(last)
      ? 'TLS was spoken to a server that does not serve TLS'
      : last.replace(/^.*:error:[0-9A-F]+:/, '');
    return { tls: true, reason: `TLS failed: ${why} (check --tls-ca / --tls-cert / --tls-key against the server's)` };
  }
  if (/ECONNREFUSED/.test(last)) return { tls: false, reason: 'nothing listens there' };
  // A listener that drops a plaintext client at once is most often one that serves TLS.
  if (/^Failed to connect/.test(last)) return { tls: false, reason: 'it closed the connection; if it serves TLS, give --tls-ca' };
  return { tls: false, reason: last || 'no answer' };
}
