/**
 * The base of every family client: routing by `application`, and the
 * ModelService RPCs, which every family's application answers for itself.
 */
import type { Client } from "@grpc/grpc-js";

import { type PreparedCall, type StreamStart, type UnaryStart, serverStream, unaryCall } from "./calls.js";
import { type CallOptions, type ClientOptions, Connection } from "./connection.js";
import {
  CacheStatsRequest,
  type CacheStatsResponse,
  ClearCacheRequest,
  type ClearCacheResponse,
  type DeepPartial,
  ListModelsRequest,
  type ListModelsResponse,
  LoadAdapterRequest,
  type LoadAdapterResponse,
  LoadModelRequest,
  type LoadModelResponse,
  type ModelInfo,
  ModelServiceClient,
  UnloadAdapterRequest,
  type UnloadAdapterResponse,
  UnloadModelRequest,
  type UnloadModelResponse,
} from "./gen/maestro/v1/models.js";
import type { Family } from "./metadata.js";

type StubConstructor<Stub> = new (
  address: string,
  credentials: Connection["credentials"],
  options: { channelOverride: Connection["channel"] },
) => Stub;

export abstract class FamilyClient {
  abstract readonly family: Family;
  readonly connection: Connection;
  // Only a client that made its own connection closes it.
  private readonly ownsConnection: boolean;
  private readonly models: ModelServiceClient;

  /** A client with its own channel, or one more family on a shared Connection. */
  constructor(options: ClientOptions | Connection = {}) {
    this.ownsConnection = !(options instanceof Connection);
    this.connection = options instanceof Connection ? options : new Connection(options);
    this.models = this.stub(ModelServiceClient);
  }

  protected stub<Stub extends Client>(Stub: StubConstructor<Stub>): Stub {
    const { target, credentials, channel } = this.connection;
    return new Stub(target, credentials, { channelOverride: channel });
  }

  protected prepare(options?: CallOptions, model = ""): PreparedCall {
    return this.connection.prepare(this.family, options, model);
  }

  protected unary<Res>(start: UnaryStart<Res>, options?: CallOptions, model = ""): Promise<Res> {
    return unaryCall(start, this.prepare(options, model));
  }

  protected stream<Res>(start: StreamStart<Res>, options?: CallOptions, model = ""): AsyncGenerator<Res, void, undefined> {
    return serverStream(start, this.prepare(options, model));
  }

  /** This family's models (id, engine, device, readiness, limits, stats). */
  async listModels(options?: CallOptions): Promise<ModelInfo[]> {
    const request = ListModelsRequest.fromPartial({});
    const reply = await this.unary<ListModelsResponse>((md, o, cb) => this.models.listModels(request, md, o, cb), options);
    return reply.models;
  }

  /** Admin: load a registered model now (`pin` keeps it from eviction). */
  loadModel(request: DeepPartial<LoadModelRequest> = {}, options?: CallOptions): Promise<LoadModelResponse> {
    const message = LoadModelRequest.fromPartial(request);
    return this.unary((md, o, cb) => this.models.loadModel(message, md, o, cb), options, message.model);
  }

  /** Admin: unload a model once its requests have drained. */
  unloadModel(request: DeepPartial<UnloadModelRequest> = {}, options?: CallOptions): Promise<UnloadModelResponse> {
    const message = UnloadModelRequest.fromPartial(request);
    return this.unary((md, o, cb) => this.models.unloadModel(message, md, o, cb), options, message.model);
  }

  /** Admin: add a LoRA adapter to a model at run time. */
  loadAdapter(request: DeepPartial<LoadAdapterRequest>, options?: CallOptions): Promise<LoadAdapterResponse> {
    const message = LoadAdapterRequest.fromPartial(request);
    return this.unary((md, o, cb) => this.models.loadAdapter(message, md, o, cb), options, message.model);
  }

  /** Admin: remove an adapter once the requests using it have finished. */
  unloadAdapter(request: DeepPartial<UnloadAdapterRequest>, options?: CallOptions): Promise<UnloadAdapterResponse> {
    const message = UnloadAdapterRequest.fromPartial(request);
    return this.unary((md, o, cb) => this.models.unloadAdapter(message, md, o, cb), options, message.model);
  }

  /** Admin: what this family's response cache holds and how it fares. */
  cacheStats(options?: CallOptions): Promise<CacheStatsResponse> {
    const message = CacheStatsRequest.fromPartial({});
    return this.unary((md, o, cb) => this.models.cacheStats(message, md, o, cb), options);
  }

  /** Admin: drop every entry of this family's response cache. */
  clearCache(options?: CallOptions): Promise<ClearCacheResponse> {
    const message = ClearCacheRequest.fromPartial({});
    return this.unary((md, o, cb) => this.models.clearCache(message, md, o, cb), options);
  }

  /** Closes the channel if this client made it (not a MaestroClient's). */
  close(): void {
    if (this.ownsConnection) this.connection.close();
  }
}
