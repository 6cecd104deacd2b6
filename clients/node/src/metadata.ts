/**
 * What every call carries, as the Python client sends it (maestro/auth.py,
 * maestro/routing.py): the `application` routing key of its family, the API
 * key, the timeout, the model for replica affinity and the cache directive.
 */
import { Metadata } from "@grpc/grpc-js";

import { AUTH_HEADER } from "./auth.js";

/** The Serve applications, one per family; ModelService answers on each. */
export const FAMILIES = ["text", "image", "voice", "studio"] as const;
export type Family = (typeof FAMILIES)[number];

export const APPLICATION_HEADER = "application";
/** Ray Serve's model-multiplexing key; Maestro's HAProxy balances on it. */
export const MODEL_HEADER = "multiplexed_model_id";
// Ray's ingress does not pass grpc-timeout on to the replica, so the call's
// timeout also travels as metadata: a replica still loading its engine answers
// UNAVAILABLE before the deadline instead of letting it pass.
export const TIMEOUT_HEADER = "x-maestro-timeout-ms";
/** The response cache's directive: "bypass" or "refresh" ("" uses it). */
export const CACHE_HEADER = "x-maestro-cache";
export const CACHE_MODES = ["", "bypass", "refresh"] as const;
export type CacheMode = (typeof CACHE_MODES)[number];
// HAProxy refuses oversized headers; no registered model id is this long, so
// such a call goes without the routing header (and is answered NOT_FOUND).
export const MAX_ROUTED_MODEL_CHARS = 256;

/** A model id that may travel as metadata: printable ASCII, short. */
export function routable(model: string): boolean {
  return model.length > 0 && model.length <= MAX_ROUTED_MODEL_CHARS && /^[\x20-\x7e]+$/.test(model);
}

export interface CallMetadataParts {
  family: Family;
  apiKey?: string | undefined;
  timeoutMs?: number | null | undefined;
  model?: string | undefined;
  cache?: CacheMode | undefined;
  extra?: Record<string, string> | undefined;
}

/** The metadata of one call. */
export function callMetadata(parts: CallMetadataParts): Metadata {
  const metadata = new Metadata();
  for (const [key, value] of Object.entries(parts.extra ?? {})) metadata.set(key, value);
  metadata.set(APPLICATION_HEADER, parts.family);
  if (parts.apiKey) metadata.set(AUTH_HEADER, `Bearer ${parts.apiKey}`);
  if (parts.timeoutMs != null) metadata.set(TIMEOUT_HEADER, String(Math.trunc(parts.timeoutMs)));
  if (parts.model && routable(parts.model)) metadata.set(MODEL_HEADER, parts.model);
  if (parts.cache) metadata.set(CACHE_HEADER, parts.cache);
  return metadata;
}
