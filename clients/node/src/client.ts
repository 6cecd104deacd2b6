/** One channel, a client per family, and the models of every family merged. */
import { status } from "@grpc/grpc-js";

import { type CallOptions, type ClientOptions, Connection } from "./connection.js";
import { MaestroError } from "./errors.js";
import type { FamilyClient } from "./family.js";
import type { ModelInfo } from "./gen/maestro/v1/models.js";
import { ImageClient } from "./image.js";
import { FAMILIES, type Family } from "./metadata.js";
import { StudioClient } from "./studio.js";
import { TextClient } from "./text.js";
import { VoiceClient } from "./voice.js";

export class MaestroClient {
  readonly connection: Connection;
  readonly text: TextClient;
  readonly image: ImageClient;
  readonly voice: VoiceClient;
  readonly studio: StudioClient;

  constructor(options: ClientOptions = {}) {
    this.connection = new Connection(options);
    this.text = new TextClient(this.connection);
    this.image = new ImageClient(this.connection);
    this.voice = new VoiceClient(this.connection);
    this.studio = new StudioClient(this.connection);
  }

  family(name: Family): FamilyClient {
    return this[name];
  }

  /** Every family's models, merged; an application that is not deployed is skipped. */
  async listModels(families: readonly Family[] = FAMILIES, options?: CallOptions): Promise<ModelInfo[]> {
    const models: ModelInfo[] = [];
    for (const name of families) {
      try {
        models.push(...(await this.family(name).listModels(options)));
      } catch (error) {
        if (!(error instanceof MaestroError && error.code === status.NOT_FOUND)) throw error;
      }
    }
    return models;
  }

  close(): void {
    this.connection.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
