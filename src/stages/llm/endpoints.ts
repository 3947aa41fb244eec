/**
 * The endpoints of an LLM site, by provider. Matched on the normalized request path (the
 * site's `path_prefix` is part of it and is forwarded, so an LLM site serves `/` or `/v1`).
 * A path that is not an endpoint is refused (404 not_found) and never forwarded: an
 * unlisted endpoint (files, fine-tuning, batches) would bypass model control and budgets.
 */
export type Dialect = 'chat' | 'completions' | 'embeddings' | 'responses' | 'messages' | 'models';

export interface Endpoint {
  readonly dialect: Dialect;
  readonly method: 'POST' | 'GET';
  /** The body field that caps output tokens, if the endpoint produces any. */
  readonly maxTokensFields: readonly string[];
  /** Whether `stream_options.include_usage` asks this endpoint for usage on a stream. */
  readonly streamOptions: boolean;
  /** Fields that choose several outputs per call. */
  readonly nFields: readonly string[];
  /** Fields that declare tools. */
  readonly toolFields: readonly string[];
}

const CHAT: Endpoint = { dialect: 'chat', method: 'POST', maxTokensFields: ['max_tokens', 'max_completion_tokens'], streamOptions: true, nFields: ['n'], toolFields: ['tools', 'functions'] };
const COMPLETIONS: Endpoint = { dialect: 'completions', method: 'POST', maxTokensFields: ['max_tokens'], streamOptions: true, nFields: ['n', 'best_of'], toolFields: [] };
const EMBEDDINGS: Endpoint = { dialect: 'embeddings', method: 'POST', maxTokensFields: [], streamOptions: false, nFields: [], toolFields: [] };
const RESPONSES: Endpoint = { dialect: 'responses', method: 'POST', maxTokensFields: ['max_output_tokens'], streamOptions: false, nFields: [], toolFields: ['tools'] };
const MESSAGES: Endpoint = { dialect: 'messages', method: 'POST', maxTokensFields: ['max_tokens'], streamOptions: false, nFields: [], toolFields: ['tools'] };
const MODELS: Endpoint = { dialect: 'models', method: 'GET', maxTokensFields: [], streamOptions: false, nFields: [], toolFields: [] };

const OPENAI = new Map<string, Endpoint>([
  ['/v1/chat/completions', CHAT],
  ['/v1/completions', COMPLETIONS],
  ['/v1/embeddings', EMBEDDINGS],
  ['/v1/responses', RESPONSES],
  ['/v1/models', MODELS],
]);
const ANTHROPIC = new Map<string, Endpoint>([
  ['/v1/messages', MESSAGES],
  ['/v1/models', MODELS],
]);

/** The endpoint a normalized path names for `provider`, or null. `/v1/models/<id>` reads one model. */
export function endpointFor(provider: 'openai' | 'anthropic', normPath: string): Endpoint | null {
  const table = provider === 'openai' ? OPENAI : ANTHROPIC;
  const p = normPath.length > 1 && normPath.endsWith('/') ? normPath.slice(0, -1) : normPath;
  const e = table.get(p);
  if (e !== undefined) return e;
  if (p.startsWith('/v1/models/') && p.indexOf('/', 11) < 0) return MODELS;
  return null;
}

/** Every top-level body field the gateway decides on: compared case-insensitively for duplicates. */
export const DECIDED_FIELDS: ReadonlySet<string> = new Set(['model', 'stream', 'stream_options', 'max_tokens', 'max_completion_tokens', 'max_output_tokens', 'n', 'best_of', 'tools', 'functions']);
