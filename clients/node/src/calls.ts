/**
 * Unary calls as promises and server streams as async iterators, shared by
 * every family client. Both stop on the caller's AbortSignal (the call is
 * cancelled on the server, and the promise or iterator rejects with the
 * signal's reason, as fetch does); leaving a stream's `for await` early
 * cancels the call too. Every other failure is a MaestroError.
 */
import type { CallOptions as GrpcCallOptions, ClientReadableStream, ClientUnaryCall, Metadata, ServiceError } from "@grpc/grpc-js";

import { toMaestroError } from "./errors.js";

export type UnaryStart<Res> = (
  metadata: Metadata,
  options: Partial<GrpcCallOptions>,
  callback: (error: ServiceError | null, response: Res) => void,
) => ClientUnaryCall;

export type StreamStart<Res> = (metadata: Metadata, options: Partial<GrpcCallOptions>) => ClientReadableStream<Res>;

/** What one call is sent with, resolved from the client's and the call's options. */
export interface PreparedCall {
  metadata: Metadata;
  options: Partial<GrpcCallOptions>;
  signal?: AbortSignal | undefined;
}

export function unaryCall<Res>(start: UnaryStart<Res>, call: PreparedCall): Promise<Res> {
  const { signal } = call;
  return new Promise<Res>((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const cancel = () => pending.cancel();
    const pending = start(call.metadata, call.options, (error, response) => {
      signal?.removeEventListener("abort", cancel);
      if (signal?.aborted) reject(signal.reason);
      else if (error) reject(toMaestroError(error));
      else resolve(response);
    });
    signal?.addEventListener("abort", cancel, { once: true });
  });
}

/** The messages of a server-streaming call; it starts on the first `next()`. */
export async function* serverStream<Res>(start: StreamStart<Res>, call: PreparedCall): AsyncGenerator<Res, void, undefined> {
  const { signal } = call;
  signal?.throwIfAborted();
  const stream = start(call.metadata, call.options);
  // The iterator below sees every error; this keeps an error that grpc-js
  // emits after an early exit (the CANCELLED of our own cancel) from
  // being an unhandled 'error' event.
  stream.on("error", () => {});
  const cancel = () => stream.cancel();
  signal?.addEventListener("abort", cancel, { once: true });
  try {
    for await (const message of stream) yield message as Res;
  } catch (error) {
    if (signal?.aborted) throw signal.reason;
    throw toMaestroError(error);
  } finally {
    signal?.removeEventListener("abort", cancel);
    stream.cancel();
  }
}
