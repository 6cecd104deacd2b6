/** TextService: whole completions and streamed text deltas (`application: text`). */
import type { CallOptions, ClientOptions, Connection } from "./connection.js";
import { FamilyClient } from "./family.js";
import {
  type DeepPartial,
  GenerateTextRequest,
  type GenerateTextResponse,
  StreamTextRequest,
  type StreamTextResponse,
  TextServiceClient,
} from "./gen/maestro/v1/text.js";

export class TextClient extends FamilyClient {
  readonly family = "text" as const;
  private readonly service: TextServiceClient;

  constructor(options?: ClientOptions | Connection) {
    super(options);
    this.service = this.stub(TextServiceClient);
  }

  /** The whole completion: `{ prompt }` or `{ messages }`, plus sampling fields. */
  generateText(request: DeepPartial<GenerateTextRequest>, options?: CallOptions): Promise<GenerateTextResponse> {
    const message = GenerateTextRequest.fromPartial(request);
    return this.unary((md, o, cb) => this.service.generateText(message, md, o, cb), options, message.model);
  }

  /** Text deltas as they arrive; the last carries `finishReason` and `usage`. */
  streamText(request: DeepPartial<StreamTextRequest>, options?: CallOptions): AsyncGenerator<StreamTextResponse, void, undefined> {
    const message = StreamTextRequest.fromPartial(request);
    return this.stream((md, o) => this.service.streamText(message, md, o), options, message.model);
  }
}
