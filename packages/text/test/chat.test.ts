/**
 * The chat templates against the text Hugging Face's apply_chat_template writes with Meta's Llama 3
 * instruct template and Qwen2's ChatML template (the expected strings are written out here from
 * those Jinja templates), how a template is chosen, and the encoding with special tokens as ids.
 */
import { describe, expect, it } from 'vitest';
import { chatEndOfTurn, chooseChatTemplate, encodeChat, recogniseChatTemplate, renderChatTemplate, trainBpe } from '../src';

const CONVERSATION = [
  { role: 'system', content: 'You trade cards.' },
  { role: 'user', content: '  Which card?\n' },
  { role: 'assistant', content: 'The red one.' },
  { role: 'user', content: 'Why?' },
] as const;

// Meta-Llama-3-8B-Instruct's tokenizer_config.json chat_template, as it ships.
const LLAMA3_JINJA =
  "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}";
// Qwen2-7B-Instruct's.
const QWEN2_JINJA =
  "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

describe('chat templates', () => {
  it('llama3: headers, trimmed contents, <|eot_id|>, one BOS, an open assistant header', () => {
    expect(renderChatTemplate('llama3', CONVERSATION)).toBe(
      '<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou trade cards.<|eot_id|>' +
        '<|start_header_id|>user<|end_header_id|>\n\nWhich card?<|eot_id|>' +
        '<|start_header_id|>assistant<|end_header_id|>\n\nThe red one.<|eot_id|>' +
        '<|start_header_id|>user<|end_header_id|>\n\nWhy?<|eot_id|>' +
        '<|start_header_id|>assistant<|end_header_id|>\n\n',
    );
    expect(chatEndOfTurn('llama3')).toBe('<|eot_id|>');
  });

  it('chatml (Qwen2): the default system message when none is given, contents untrimmed', () => {
    expect(renderChatTemplate('chatml', CONVERSATION.slice(1), { generationPrompt: false })).toBe(
      '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' +
        '<|im_start|>user\n  Which card?\n<|im_end|>\n' +
        '<|im_start|>assistant\nThe red one.<|im_end|>\n' +
        '<|im_start|>user\nWhy?<|im_end|>\n',
    );
    expect(renderChatTemplate('chatml', CONVERSATION).startsWith('<|im_start|>system\nYou trade cards.<|im_end|>\n')).toBe(true);
    expect(renderChatTemplate('chatml', CONVERSATION).endsWith('<|im_start|>assistant\n')).toBe(true);
    expect(() => renderChatTemplate('chatml', [{ role: 'tool' as 'user', content: 'x' }])).toThrow(
      /messages\[0\]\.role: must be system, user or assistant/,
    );
  });

  it("is chosen as configured, else from the Jinja text, else by the tokenizer's special tokens, else none", () => {
    const vocab = (tokens: string[]) => ({ tokenToId: (t: string) => (tokens.includes(t) ? 1 : undefined) });
    expect(recogniseChatTemplate(LLAMA3_JINJA)).toBe('llama3');
    expect(recogniseChatTemplate(QWEN2_JINJA)).toBe('chatml');
    expect(recogniseChatTemplate('{{ messages }}')).toBeNull();
    expect(chooseChatTemplate(vocab([]), { configured: 'chatml' })).toBe('chatml');
    expect(chooseChatTemplate(vocab([]), { jinja: LLAMA3_JINJA })).toBe('llama3');
    expect(chooseChatTemplate(vocab(['<|im_start|>', '<|im_end|>']))).toBe('chatml');
    expect(chooseChatTemplate(vocab(['<|endoftext|>']))).toBeNull();
  });

  it('encodes the markers as single special-token ids and adds no second BOS', () => {
    const tok = trainBpe(['<|im_start|>user\nhello<|im_end|>\n'], {
      vocab_size: 300,
      bos_token: '<|im_start|>',
      eos_token: '<|im_end|>',
      pad_token: '',
    });
    const ids = encodeChat(tok, 'chatml', [{ role: 'user', content: 'hello' }]);
    const start = tok.tokenToId('<|im_start|>') as number;
    expect(ids.filter((i) => i === start)).toHaveLength(3);
    expect(ids[0]).toBe(start);
    expect(tok.decode(ids)).toBe(renderChatTemplate('chatml', [{ role: 'user', content: 'hello' }]));
    expect(() => encodeChat(tok, 'llama3', [{ role: 'user', content: 'hi' }])).toThrow(/no <\|begin_of_text\|>, <\|start_header_id\|>/);
  });
});
