/**
 * The one error the client throws for a failed call: `MaestroError`, with the
 * status code, the server's details and the request id the server echoed in
 * trailing metadata (as the Python client's MaestroRpcError).
 */
import { Metadata, type ServiceError, status } from "@grpc/grpc-js";

export const REQUEST_ID_KEY = "x-request-id";
export const RETRY_PUSHBACK_KEY = "grpc-retry-pushback-ms";
export const LOST_REPLICA = "the server reset the call (its replica was lost); retry";
// How gRPC reports an HTTP/2 stream the other side reset, or a connection that
// went away mid-call, as CANCELLED.
const RESET_MARKERS = ["RST_STREAM", "Stream removed", "Socket closed"];

/** A status code's name, e.g. 4 → "DEADLINE_EXCEEDED". */
export function statusName(code: status): string {
  return status[code] ?? `UNKNOWN_STATUS_${code}`;
}

export interface MaestroErrorFields {
  code: status;
  details: string;
  requestId?: string;
  retryAfterMs?: number | undefined;
  metadata?: Metadata;
}

export class MaestroError extends Error {
  /** The gRPC status code (`status.INVALID_ARGUMENT` is 3). */
  readonly code: status;
  /** Its name, e.g. "INVALID_ARGUMENT". */
  readonly codeName: string;
  /** The server's message, e.g. naming the field and the allowed range. */
  readonly details: string;
  /** The server's id of the call (trailing x-request-id); "" when none. */
  readonly requestId: string;
  /** When the server said when to try again (a quota), in milliseconds. */
  readonly retryAfterMs: number | undefined;
  /** The trailing metadata. */
  readonly metadata: Metadata;

  constructor(fields: MaestroErrorFields, options?: ErrorOptions) {
    super(`${statusName(fields.code)}: ${fields.details}`, options);
    this.name = "MaestroError";
    this.code = fields.code;
    this.codeName = statusName(fields.code);
    this.details = fields.details;
    this.requestId = fields.requestId ?? "";
    this.retryAfterMs = fields.retryAfterMs;
    this.metadata = fields.metadata ?? new Metadata();
  }
}

function isServiceError(error: unknown): error is ServiceError {
  return error instanceof Error && typeof (error as Partial<ServiceError>).code === "number";
}

function trailingValue(metadata: Metadata | undefined, key: string): string | undefined {
  const value = metadata?.get(key)[0];
  return value === undefined ? undefined : value.toString();
}

/** The MaestroError for what a grpc-js call failed with. */
export function toMaestroError(error: unknown): MaestroError {
  if (error instanceof MaestroError || !isServiceError(error)) {
    return error instanceof MaestroError
      ? error
      : new MaestroError({ code: status.UNKNOWN, details: String(error) }, { cause: error });
  }
  let code: status = error.code;
  let details = error.details ?? "";
  if (code === status.CANCELLED && RESET_MARKERS.some((marker) => details.includes(marker))) {
    // The client cancels only through an AbortSignal or by leaving a stream,
    // which never surface as this error; a reset it did not cause is a lost replica.
    code = status.UNAVAILABLE;
    details = `${LOST_REPLICA}: ${details}`;
  }
  const pushback = Number.parseInt(trailingValue(error.metadata, RETRY_PUSHBACK_KEY) ?? "", 10);
  return new MaestroError(
    {
      code,
      details,
      requestId: trailingValue(error.metadata, REQUEST_ID_KEY) ?? "",
      retryAfterMs: Number.isNaN(pushback) ? undefined : Math.max(pushback, 0),
      metadata: error.metadata,
    },
    { cause: error },
  );
}
