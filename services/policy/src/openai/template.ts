/**
 * The chat template: how a conversation becomes the prompt text of a GPT-2-family model, which has
 * no template of its own. One turn per line, the role as a capitalised label, and an open assistant
 * turn at the end for the model to complete:
 *
 *   System: You trade prediction markets.
 *   User: BTC is up 3%. Buy or sell?
 *   Assistant:
 *
 * `developer` (OpenAI's newer name for system instructions) is written as `System`. A model answers
 * in this format when it was trained on prompts made by this same function, so data preparation
 * should import it rather than write its own. The next turn's label ends a completion (TURN_STOPS),
 * because a model trained on conversations goes on to write the user's reply after its own.
 * Tokenizer directories' Jinja `chat_template`s are not executed.
 */

export const CHAT_ROLES = ['system', 'developer', 'user', 'assistant'] as const;
export type ChatRole = (typeof CHAT_ROLES)[number];

export interface ChatMessage {
  role: ChatRole;
  content: string;
}

const LABELS: Record<ChatRole, string> = { system: 'System', developer: 'System', user: 'User', assistant: 'Assistant' };

/** Stop strings every completion gets: the start of a user or system turn. */
export const TURN_STOPS = ['\nUser:', '\nSystem:'] as const;

/** The prompt for `messages`: one labelled line per message, then `Assistant:` for the model to complete. */
export function renderChat(messages: readonly ChatMessage[]): string {
  const turns = messages.map((m) => `${LABELS[m.role]}: ${m.content}\n`);
  return `${turns.join('')}Assistant:`;
}
