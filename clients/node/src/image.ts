/** ImageService: finished images or videos, or step progress then the result (`application: image`). */
import type { CallOptions, ClientOptions, Connection } from "./connection.js";
import { FamilyClient } from "./family.js";
import {
  type DeepPartial,
  GenerateImageRequest,
  type GenerateImageResponse,
  ImageServiceClient,
  StreamImageRequest,
  type StreamImageResponse,
  GenerateVideoRequest,
  type GenerateVideoResponse,
  StreamVideoRequest,
  type StreamVideoResponse,
} from "./gen/maestro/v1/image.js";

export class ImageClient extends FamilyClient {
  readonly family = "image" as const;
  private readonly service: ImageServiceClient;

  constructor(options?: ClientOptions | Connection) {
    super(options);
    this.service = this.stub(ImageServiceClient);
  }

  /** The finished images (encoded bytes, mime type, size, seed). */
  generateImage(request: DeepPartial<GenerateImageRequest>, options?: CallOptions): Promise<GenerateImageResponse> {
    const message = GenerateImageRequest.fromPartial(request);
    return this.unary((md, o, cb) => this.service.generateImage(message, md, o, cb), options, message.model);
  }

  /** A progress event per denoising step (`event.$case === "progress"`), then the result. */
  streamImage(request: DeepPartial<StreamImageRequest>, options?: CallOptions): AsyncGenerator<StreamImageResponse, void, undefined> {
    const message = StreamImageRequest.fromPartial(request);
    return this.stream((md, o) => this.service.streamImage(message, md, o), options, message.model);
  }

  /** A video file: text-to-video from `prompt`, or image-to-video from `initImage` (no prompt). */
  generateVideo(request: DeepPartial<GenerateVideoRequest>, options?: CallOptions): Promise<GenerateVideoResponse> {
    const message = GenerateVideoRequest.fromPartial(request);
    return this.unary((md, o, cb) => this.service.generateVideo(message, md, o, cb), options, message.model);
  }

  /** A progress event per denoising step (optional preview frames), then the video. */
  streamVideo(request: DeepPartial<StreamVideoRequest>, options?: CallOptions): AsyncGenerator<StreamVideoResponse, void, undefined> {
    const message = StreamVideoRequest.fromPartial(request);
    return this.stream((md, o) => this.service.streamVideo(message, md, o), options, message.model);
  }
}
