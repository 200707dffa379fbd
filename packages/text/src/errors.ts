/** A tokenizer file, option or input text that cannot be used; `key` is the dotted path that broke, as in config errors. */
export class TokenizerFormatError extends Error {
  constructor(
    readonly key: string,
    readonly rule: string,
  ) {
    super(`${key}: ${rule}`);
    this.name = 'TokenizerFormatError';
  }
}

/** Token ids that the tokenizer cannot decode; `index` is the position in the input. */
export class TokenIdError extends Error {
  constructor(
    readonly index: number,
    readonly id: number,
    readonly vocabSize: number,
  ) {
    super(`ids[${index}]: ${id} is not a token id (the vocabulary holds ids 0..${vocabSize - 1})`);
    this.name = 'TokenIdError';
  }
}
