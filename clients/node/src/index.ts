/**
 * Maestro's typed gRPC client for Node.js.
 *
 *     const client = new MaestroClient();            // MAESTRO_TARGET, MAESTRO_API_KEY
 *     for await (const chunk of client.text.streamText({ prompt: "Once", maxTokens: 32 })) {
 *       process.stdout.write(chunk.text);
 *     }
 *
 * Every call carries its family's `application` routing key, the API key, and
 * its deadline; failures are MaestroError (code, details, requestId).
 */
export { defaultApiKey } from "./auth.js";
export { MaestroClient } from "./client.js";
export { type CallOptions, type ClientOptions, Connection, DEFAULT_TIMEOUT_MS } from "./connection.js";
export { defaultTarget, MAESTRO_API_KEY, MAESTRO_API_KEY_FILE, MAESTRO_TARGET } from "./envs.js";
export { MaestroError, statusName, toMaestroError } from "./errors.js";
export { FamilyClient } from "./family.js";
export { ImageClient } from "./image.js";
export { type CacheMode, FAMILIES, type Family } from "./metadata.js";
export { StudioClient } from "./studio.js";
export { TextClient } from "./text.js";
export { VoiceClient } from "./voice.js";
export { status } from "@grpc/grpc-js";

export * as image from "./gen/maestro/v1/image.js";
export * as models from "./gen/maestro/v1/models.js";
export * as studio from "./gen/maestro/v1/studio.js";
export * as text from "./gen/maestro/v1/text.js";
export * as voice from "./gen/maestro/v1/voice.js";
// The enums, flat, for requests: { format: ImageFormat.IMAGE_FORMAT_PNG }.
export { ImageFormat, VideoFormat } from "./gen/maestro/v1/image.js";
export { Family as ModelFamily } from "./gen/maestro/v1/models.js";
export { FinishReason } from "./gen/maestro/v1/text.js";
export { AudioFormat } from "./gen/maestro/v1/voice.js";
