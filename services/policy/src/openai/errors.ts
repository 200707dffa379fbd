/**
 * Errors in OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`, so that OpenAI's
 * clients raise their usual error classes (BadRequestError for 400, NotFoundError for 404, ...). The
 * policy core's MeshErrors ("field: rule" with a gRPC status) are translated here, with the core's
 * field names turned into the request's.
 */
import { status } from '@grpc/grpc-js';
import { MeshError } from '@rlmesh/mesh';

export class OpenAiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type: string,
    readonly param: string | null = null,
    readonly code: string | null = null,
  ) {
    super(message);
  }

  get body(): { error: { message: string; type: string; param: string | null; code: string | null } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

/** The request broke a rule: 400 naming the parameter, in the repository's "field: rule" form. */
export const badRequest = (param: string, rule: string, code: string | null = null) =>
  new OpenAiError(400, `${param}: ${rule}`, 'invalid_request_error', param, code);

export const modelNotFound = (model: string, why: string) =>
  new OpenAiError(
    404,
    `model: the model ${JSON.stringify(model)} does not exist (${why})`,
    'invalid_request_error',
    'model',
    'model_not_found',
  );

/**
 * The core's field names as the request names them: the prompt is the rendered messages, the run is
 * the model. `maxTokensParam` is whichever of max_tokens / max_completion_tokens the request used.
 */
function requestParam(field: string, maxTokensParam: string): string {
  if (field === 'prompt' || field === 'prompt_text') return 'messages';
  if (field === 'run_id' || field === 'channel') return 'model';
  if (field === 'max_new_tokens') return maxTokensParam;
  return field;
}

/** Any error thrown while serving a request, in OpenAI's shape; unknown errors are 500s. */
export function toOpenAiError(e: unknown, maxTokensParam = 'max_tokens'): OpenAiError {
  if (e instanceof OpenAiError) return e;
  if (!(e instanceof MeshError)) return new OpenAiError(500, `internal error: ${(e as Error)?.message ?? String(e)}`, 'server_error');
  const m = /^([a-z_]+): ([\s\S]*)$/.exec(e.message);
  const param = m ? requestParam(m[1], maxTokensParam) : null;
  const message = m ? `${param}: ${m[2]}` : e.message;
  switch (e.code) {
    case status.INVALID_ARGUMENT:
      return new OpenAiError(400, message, 'invalid_request_error', param);
    case status.NOT_FOUND:
      return new OpenAiError(404, message, 'invalid_request_error', param, param === 'model' ? 'model_not_found' : null);
    case status.FAILED_PRECONDITION:
      // The run exists but cannot chat (no causal LM, no tokenizer): the model is the wrong one.
      return new OpenAiError(400, message, 'invalid_request_error', param, 'model_not_supported');
    case status.RESOURCE_EXHAUSTED:
      return new OpenAiError(429, message, 'rate_limit_exceeded', param, 'rate_limit_exceeded');
    case status.UNAVAILABLE:
      return new OpenAiError(503, message, 'server_error', null, 'service_unavailable');
    default:
      return new OpenAiError(500, message, 'server_error');
  }
}
