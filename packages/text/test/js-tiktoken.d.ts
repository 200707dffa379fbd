// Reached through package.json "exports", which the type-check's `node` resolution does not read.
declare module 'js-tiktoken/ranks/gpt2' {
  const ranks: { pat_str: string; special_tokens: Record<string, number>; bpe_ranks: string };
  export default ranks;
}
declare module 'js-tiktoken/ranks/cl100k_base' {
  const ranks: { pat_str: string; special_tokens: Record<string, number>; bpe_ranks: string };
  export default ranks;
}
