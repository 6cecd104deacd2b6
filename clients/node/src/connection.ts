/**
 * What the family clients of one MaestroClient share: the channel, the API
 * key, the default deadline and the cache directive.
 */
import { Channel, type ChannelCredentials, type ChannelOptions, credentials } from "@grpc/grpc-js";

import { defaultApiKey } from "./auth.js";
import type { PreparedCall } from "./calls.js";
import { defaultTarget } from "./envs.js";
import { type CacheMode, CACHE_MODES, type Family, callMetadata } from "./metadata.js";

export const DEFAULT_TIMEOUT_MS = 120_000;
// Streams and images can be large; the server bounds what it sends.
const CHANNEL_OPTIONS: ChannelOptions = { "grpc.max_receive_message_length": 64 * 1024 * 1024 };

export interface ClientOptions {
  /** host:port; default MAESTRO_TARGET, else 127.0.0.1:9000. */
  target?: string;
  /** Sent as `authorization: Bearer <key>`; default MAESTRO_API_KEY, else the
   * key file (~/.maestro/api_key); "" sends none. */
  apiKey?: string;
  /** Default deadline of every call in milliseconds (120 s); null: none. */
  timeoutMs?: number | null;
  /** "bypass" or "refresh" the server's response cache on every call. */
  cache?: CacheMode;
  /** Default: insecure (the demo stack has no TLS). */
  credentials?: ChannelCredentials;
  /** Extra grpc-js channel options. */
  channelOptions?: ChannelOptions;
}

export interface CallOptions {
  /** This call's deadline in milliseconds; null: none; default: the client's. */
  timeoutMs?: number | null;
  /** Aborting cancels the call; it then rejects with `signal.reason`. */
  signal?: AbortSignal;
  /** Extra metadata to send, e.g. { "x-request-id": "my-id" }. */
  metadata?: Record<string, string>;
}

export class Connection {
  readonly target: string;
  readonly channel: Channel;
  readonly credentials: ChannelCredentials;
  readonly apiKey: string | undefined;
  readonly timeoutMs: number | null;
  readonly cache: CacheMode;

  constructor(options: ClientOptions = {}) {
    if (options.cache !== undefined && !CACHE_MODES.includes(options.cache)) {
      throw new TypeError(`cache must be one of ${JSON.stringify(CACHE_MODES)}, got ${JSON.stringify(options.cache)}`);
    }
    this.target = options.target ?? defaultTarget();
    this.credentials = options.credentials ?? credentials.createInsecure();
    this.channel = new Channel(this.target, this.credentials, { ...CHANNEL_OPTIONS, ...options.channelOptions });
    this.apiKey = options.apiKey ?? defaultApiKey();
    this.timeoutMs = options.timeoutMs === undefined ? DEFAULT_TIMEOUT_MS : options.timeoutMs;
    this.cache = options.cache ?? "";
  }

  /** The metadata, deadline and signal of one call to `family`. */
  prepare(family: Family, call: CallOptions = {}, model = ""): PreparedCall {
    const timeoutMs = call.timeoutMs === undefined ? this.timeoutMs : call.timeoutMs;
    return {
      metadata: callMetadata({
        family,
        apiKey: this.apiKey,
        timeoutMs,
        model,
        cache: this.cache,
        extra: call.metadata,
      }),
      options: timeoutMs == null ? {} : { deadline: Date.now() + timeoutMs },
      signal: call.signal,
    };
  }

  close(): void {
    this.channel.close();
  }
}
