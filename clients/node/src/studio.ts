/**
 * StudioService: Compose chains text → image ∥ voice (`application: studio`).
 * Leaving the stream early, aborting or the deadline passing cancels the
 * call, and the server cancels every text, image and voice call it started.
 */
import type { CallOptions, ClientOptions, Connection } from "./connection.js";
import { FamilyClient } from "./family.js";
import { ComposeRequest, type ComposeResponse, type DeepPartial, StudioServiceClient } from "./gen/maestro/v1/studio.js";

export class StudioClient extends FamilyClient {
  readonly family = "studio" as const;
  private readonly service: StudioServiceClient;

  constructor(options?: ClientOptions | Connection) {
    super(options);
    this.service = this.stub(StudioServiceClient);
  }

  /** The plan, each scene's image, audio or error as they finish, then `done`. */
  compose(request: DeepPartial<ComposeRequest>, options?: CallOptions): AsyncGenerator<ComposeResponse, void, undefined> {
    const message = ComposeRequest.fromPartial(request);
    return this.stream((md, o) => this.service.compose(message, md, o), options);
  }
}
