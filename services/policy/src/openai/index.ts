/** The OpenAI-compatible chat endpoint of the policy service (see the package README). */
export {
  type CallContext,
  type ChatCompletion,
  type ChatCompletionChunk,
  ChatEndpoint,
  type ChatEndpointOptions,
  type PreparedCall,
} from './chat';
export { OpenAiError } from './errors';
export { type ChatMetrics, chatMetrics } from './metrics';
export { listModels, type ModelObject, type ModelRef, parseModelId } from './models';
export { type CallRecorder, MemoryRecorder, type RecordedCall, type RecordedChoice, type TokenLogprob } from './recorder';
export { type ChatRequest, parseChatRequest } from './request';
export { type OpenAiServer, type OpenAiServerOptions, startOpenAiServer } from './server';
export { CHAT_ROLES, type ChatMessage, type ChatRole, renderChat, TURN_STOPS } from './template';
export { CompletionText } from './text';
