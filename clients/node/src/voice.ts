/** VoiceService: a whole utterance, or audio chunks as segments finish (`application: voice`). */
import type { CallOptions, ClientOptions, Connection } from "./connection.js";
import { FamilyClient } from "./family.js";
import {
  type DeepPartial,
  StreamSpeechRequest,
  type StreamSpeechResponse,
  SynthesizeRequest,
  type SynthesizeResponse,
  VoiceServiceClient,
} from "./gen/maestro/v1/voice.js";

export class VoiceClient extends FamilyClient {
  readonly family = "voice" as const;
  private readonly service: VoiceServiceClient;

  constructor(options?: ClientOptions | Connection) {
    super(options);
    this.service = this.stub(VoiceServiceClient);
  }

  /** The whole utterance (WAV unless `format` says otherwise) and its info. */
  synthesize(request: DeepPartial<SynthesizeRequest>, options?: CallOptions): Promise<SynthesizeResponse> {
    const message = SynthesizeRequest.fromPartial(request);
    return this.unary((md, o, cb) => this.service.synthesize(message, md, o, cb), options, message.model);
  }

  /** Audio chunks, one per sentence or clause; the last has `last: true`. */
  streamSpeech(request: DeepPartial<StreamSpeechRequest>, options?: CallOptions): AsyncGenerator<StreamSpeechResponse, void, undefined> {
    const message = StreamSpeechRequest.fromPartial(request);
    return this.stream((md, o) => this.service.streamSpeech(message, md, o), options, message.model);
  }
}
