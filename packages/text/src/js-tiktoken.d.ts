// The rank files are reached through package.json "exports", which this repository's `node`
// module resolution does not read; their shape is js-tiktoken's TiktokenBPE.
declare module 'js-tiktoken/ranks/gpt2' {
  const ranks: { pat_str: string; special_tokens: Record<string, number>; bpe_ranks: string };
  export default ranks;
}
