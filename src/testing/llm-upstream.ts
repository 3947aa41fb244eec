/**
 * A fake LLM service for the tests: speaks enough of the OpenAI and Anthropic APIs for
 * the official SDKs (JSON and server-sent events with realistic chunk shapes and usage),
 * records which credential each request carried, and can be told to answer slowly, in an
 * unexpected shape, or with an error.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { startUpstream, type Upstream } from './harness.js';

export interface LlmPlan {
  /** Words in each answer (one streamed chunk per word; completion tokens = words). */
  words: number;
  /** Prompt tokens reported. */
  prompt: number;
  /** Pause between streamed chunks (ms). */
  delayMs: number;
  /** normal, or an answer of a shape no parser knows (passed through, usage estimated). */
  shape: 'normal' | 'unexpected';
  /** Answer with this status and an error body instead. */
  errorStatus: number | null;
}

export interface LlmSeen {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingMessage['headers'];
  readonly body: string;
}

export interface LlmUpstream extends Upstream {
  readonly plan: LlmPlan;
  readonly calls: LlmSeen[];
  /** Streams still being written when the client went away. */
  readonly abandoned: string[];
}

const word = (i: number) => (i === 0 ? 'Hello' : ` w${i}`);

function sse(res: ServerResponse, events: Array<[string | null, unknown]>, delayMs: number, onAbandon: () => void): void {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  let i = 0;
  let gone = false;
  res.on('close', () => {
    if (!res.writableFinished) {
      gone = true;
      onAbandon();
    }
  });
  const next = () => {
    if (gone) return;
    if (i >= events.length) {
      res.end();
      return;
    }
    const [name, data] = events[i++] as [string | null, unknown];
    res.write(`${name !== null ? `event: ${name}\n` : ''}data: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`);
    if (delayMs > 0) setTimeout(next, delayMs);
    else setImmediate(next);
  };
  next();
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

export async function startLlmUpstream(): Promise<LlmUpstream> {
  const plan: LlmPlan = { words: 5, prompt: 12, delayMs: 0, shape: 'normal', errorStatus: null };
  const calls: LlmSeen[] = [];
  const abandoned: string[] = [];
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      calls.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
      const path = (req.url ?? '').split('?')[0];
      if (plan.errorStatus !== null) return json(res, plan.errorStatus, { error: { message: 'upstream says no', type: 'invalid_request_error' } });
      if (path === '/v1/models') return json(res, 200, { object: 'list', data: [{ id: 'gpt-test', object: 'model', created: 1, owned_by: 'test' }] });
      let b: Record<string, unknown> = {};
      try {
        b = JSON.parse(body) as Record<string, unknown>;
      } catch {
        return json(res, 400, { error: { message: 'bad json' } });
      }
      const model = String(b.model);
      const words = plan.words;
      const text = Array.from({ length: words }, (_, i) => word(i)).join('');
      if (plan.shape === 'unexpected') {
        if (b.stream === true) return sse(res, [[null, { something: 'else', text }], [null, '[DONE]']], plan.delayMs, () => abandoned.push(path ?? ''));
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end(`${text} (and no usage anywhere)`);
        return;
      }
      if (path === '/v1/chat/completions') {
        const usage = { prompt_tokens: plan.prompt, completion_tokens: words, total_tokens: plan.prompt + words };
        if (b.stream !== true) {
          return json(res, 200, { id: 'chatcmpl-1', object: 'chat.completion', created: 1, model, choices: [{ index: 0, message: { role: 'assistant', content: text }, finish_reason: 'stop' }], usage });
        }
        const includeUsage = (b.stream_options as { include_usage?: boolean } | undefined)?.include_usage === true;
        const base = { id: 'chatcmpl-1', object: 'chat.completion.chunk', created: 1, model, system_fingerprint: 'fp' };
        const u = includeUsage ? { usage: null } : {};
        const events: Array<[string | null, unknown]> = [[null, { ...base, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }], ...u }]];
        for (let i = 0; i < words; i++) events.push([null, { ...base, choices: [{ index: 0, delta: { content: word(i) }, finish_reason: null }], ...u }]);
        events.push([null, { ...base, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }], ...u }]);
        if (includeUsage) events.push([null, { ...base, choices: [], usage }]);
        events.push([null, '[DONE]']);
        return sse(res, events, plan.delayMs, () => abandoned.push(path));
      }
      if (path === '/v1/embeddings') {
        // The SDK asks for base64 (little-endian float32) unless told otherwise.
        const vec = [0.1, 0.2, 0.3];
        const embedding = b.encoding_format === 'base64' ? Buffer.from(new Float32Array(vec).buffer).toString('base64') : vec;
        return json(res, 200, { object: 'list', data: [{ object: 'embedding', index: 0, embedding }], model, usage: { prompt_tokens: plan.prompt, total_tokens: plan.prompt } });
      }
      if (path === '/v1/messages') {
        const usage = { input_tokens: plan.prompt, output_tokens: words };
        const msg = { id: 'msg_1', type: 'message', role: 'assistant', model, content: [{ type: 'text', text }], stop_reason: 'end_turn', stop_sequence: null, usage };
        if (b.stream !== true) return json(res, 200, msg);
        const events: Array<[string | null, unknown]> = [
          ['message_start', { type: 'message_start', message: { ...msg, content: [], stop_reason: null, usage: { input_tokens: plan.prompt, output_tokens: 1 } } }],
          ['content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }],
          ['ping', { type: 'ping' }],
        ];
        for (let i = 0; i < words; i++) events.push(['content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: word(i) } }]);
        events.push(['content_block_stop', { type: 'content_block_stop', index: 0 }]);
        events.push(['message_delta', { type: 'message_delta', delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: words } }]);
        events.push(['message_stop', { type: 'message_stop' }]);
        return sse(res, events, plan.delayMs, () => abandoned.push(path));
      }
      json(res, 404, { error: { message: 'no such endpoint' } });
    });
  };
  const up = await startUpstream(handler);
  return Object.assign(up, { plan, calls, abandoned });
}
