/**
 * What an exchange records about its LLM call (`ex.llm`): on the log line (`llm`), in the
 * metrics (site and model labels only) and in the audit record (`llm`, docs/audit.md).
 * Never the credential: only which source it came from.
 */
export type UsageSource = 'reported' | 'estimated' | 'none';

export interface LlmCall {
  /** The public model name the client asked for (null for a model listing). */
  model: string | null;
  /** The model name the upstream got (differs for an alias). */
  upstream_model: string | null;
  /** chat, completions, embeddings, responses, messages or models. */
  endpoint: string;
  streamed: boolean;
  prompt_tokens: number | null;
  completion_tokens: number | null;
  total_tokens: number | null;
  /** reported by the upstream; estimated (unexpected answer, interrupted stream); none (no answer, an upstream error). */
  usage: UsageSource;
  /** Microseconds from the request's arrival to the first answer byte sent to the client; null without one. */
  ttfb_us: number | null;
  /** Where the upstream credential came from: subject, registry, domain or role. */
  credential: string | null;
  /** The body was rewritten (alias, clamp, added max tokens or usage request). */
  rewritten: boolean;
}
