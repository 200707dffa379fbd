/**
 * Chat templates of the Llama family, written out rather than executed from Jinja: a conversation
 * becomes the exact text `tokenizer.apply_chat_template(messages, add_generation_prompt=True)` gives
 * with the model's own template, for two families.
 *
 *   llama3  Meta Llama 3 / 3.1 instruct: <|begin_of_text|> then per message
 *           <|start_header_id|>{role}<|end_header_id|>\n\n{content, trimmed}<|eot_id|>, then an open
 *           assistant header. Ends with <|eot_id|>.
 *   chatml  Qwen2 (ChatML): <|im_start|>{role}\n{content}<|im_end|>\n per message, a default system
 *           message ("You are a helpful assistant.") when the first is not a system one, then
 *           <|im_start|>assistant\n. Ends with <|im_end|>.
 *
 * Which one a model gets (chooseChatTemplate): the one named in the run's config, else the one a
 * tokenizer_config.json `chat_template` is recognised as (by its markers; it is not executed), else
 * the one whose special tokens the tokenizer has; null when none applies (a GPT-2 tokenizer), and
 * the caller uses its own plain-text format. Llama 3.1's tool-calling preamble (the "Cutting
 * Knowledge Date" system header) is not reproduced.
 */
import type { Tokenizer } from './tokenizer';

export const CHAT_TEMPLATE_NAMES = ['llama3', 'chatml'] as const;
export type ChatTemplateName = (typeof CHAT_TEMPLATE_NAMES)[number];

export interface ChatTurn {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

interface Template {
  /** Special tokens the template's text is made of; a tokenizer with them encodes each as one id. */
  markers: readonly string[];
  /** What a Jinja chat_template of this family writes literally (its BOS comes from a variable). */
  signature: readonly string[];
  /** The token that ends an assistant turn (a generator's EOS for chat). */
  endOfTurn: string;
  render(messages: readonly ChatTurn[], generationPrompt: boolean): string;
}

export const QWEN2_DEFAULT_SYSTEM = 'You are a helpful assistant.';

const TEMPLATES: Record<ChatTemplateName, Template> = {
  llama3: {
    markers: ['<|begin_of_text|>', '<|start_header_id|>', '<|end_header_id|>', '<|eot_id|>'],
    signature: ['<|start_header_id|>', '<|end_header_id|>', '<|eot_id|>'],
    endOfTurn: '<|eot_id|>',
    render(messages, generationPrompt) {
      const turns = messages.map((m) => `<|start_header_id|>${m.role}<|end_header_id|>\n\n${m.content.trim()}<|eot_id|>`);
      return `<|begin_of_text|>${turns.join('')}${generationPrompt ? '<|start_header_id|>assistant<|end_header_id|>\n\n' : ''}`;
    },
  },
  chatml: {
    markers: ['<|im_start|>', '<|im_end|>'],
    signature: ['<|im_start|>', '<|im_end|>'],
    endOfTurn: '<|im_end|>',
    render(messages, generationPrompt) {
      const all = messages[0]?.role === 'system' ? messages : [{ role: 'system', content: QWEN2_DEFAULT_SYSTEM }, ...messages];
      const turns = all.map((m) => `<|im_start|>${m.role}\n${m.content}<|im_end|>\n`);
      return `${turns.join('')}${generationPrompt ? '<|im_start|>assistant\n' : ''}`;
    },
  },
};

/** Throws naming the message and field when a conversation cannot be rendered. */
function checkMessages(messages: readonly ChatTurn[]): void {
  if (messages.length === 0) throw new RangeError('messages: must hold at least one message');
  messages.forEach((m, i) => {
    if (!['system', 'user', 'assistant'].includes(m.role))
      throw new RangeError(`messages[${i}].role: must be system, user or assistant, got ${JSON.stringify(m.role)}`);
    if (typeof m.content !== 'string') throw new RangeError(`messages[${i}].content: must be a string`);
  });
}

/** The prompt text of `messages` under template `name`; with the open assistant turn unless told otherwise. */
export function renderChatTemplate(
  name: ChatTemplateName,
  messages: readonly ChatTurn[],
  opts: { generationPrompt?: boolean } = {},
): string {
  checkMessages(messages);
  return TEMPLATES[name].render(messages, opts.generationPrompt ?? true);
}

/** The token text that ends an assistant turn under `name`. */
export function chatEndOfTurn(name: ChatTemplateName): string {
  return TEMPLATES[name].endOfTurn;
}

/** Which of the templates a Jinja chat_template is, by the special tokens it writes; null when neither. */
export function recogniseChatTemplate(jinja: string): ChatTemplateName | null {
  for (const name of CHAT_TEMPLATE_NAMES) if (TEMPLATES[name].signature.every((m) => jinja.includes(m))) return name;
  return null;
}

/** The template for a tokenizer: configured, else recognised from `jinja`, else by its special tokens (see the file comment). */
export function chooseChatTemplate(
  tok: Pick<Tokenizer, 'tokenToId'>,
  opts: { configured?: ChatTemplateName | 'auto'; jinja?: string } = {},
): ChatTemplateName | null {
  if (opts.configured && opts.configured !== 'auto') return opts.configured;
  const recognised = opts.jinja ? recogniseChatTemplate(opts.jinja) : null;
  if (recognised) return recognised;
  for (const name of CHAT_TEMPLATE_NAMES) if (TEMPLATES[name].markers.every((m) => tok.tokenToId(m) !== undefined)) return name;
  return null;
}

/**
 * The prompt ids of `messages`: the rendered text with the template's special tokens matched as
 * single ids and no post-processor BOS (the text has its own), as apply_chat_template(tokenize=True)
 * encodes it. Throws when the tokenizer lacks one of the template's special tokens.
 */
export function encodeChat(tok: Tokenizer, name: ChatTemplateName, messages: readonly ChatTurn[]): number[] {
  const missing = TEMPLATES[name].markers.filter((m) => tok.tokenToId(m) === undefined);
  if (missing.length > 0) throw new RangeError(`chat template ${name}: the tokenizer has no ${missing.join(', ')} token`);
  return tok.encode(renderChatTemplate(name, messages), { addSpecialTokens: false });
}
