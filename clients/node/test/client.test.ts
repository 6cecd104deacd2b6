/**
 * The client against an in-process grpc-js server (no Maestro stack): what
 * every call sends, how failures and cancellation surface, where the key and
 * target come from.
 */
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";

import { Metadata, Server, ServerCredentials, type ServiceError, status } from "@grpc/grpc-js";

import {
  defaultApiKey,
  defaultTarget,
  MaestroClient,
  MaestroError,
  TextClient,
  text,
  models,
} from "@maestro/client";

interface Seen {
  metadata: Metadata;
  deadline: number;
}

class FakeStack {
  readonly server = new Server();
  readonly seen: Seen[] = [];
  cancelled = 0;
  port = 0;

  constructor() {
    const record = (call: { metadata: Metadata; getDeadline(): Date | number }) => {
      const deadline = call.getDeadline();
      this.seen.push({ metadata: call.metadata, deadline: deadline instanceof Date ? deadline.getTime() : deadline });
    };
    const textService: text.TextServiceServer = {
      generateText: (call, callback) => {
        record(call);
        if (call.request.prompt !== "bad") {
          callback(null, text.GenerateTextResponse.fromPartial({ text: `echo ${call.request.prompt}` }));
          return;
        }
        const trailing = new Metadata();
        trailing.set("x-request-id", "rid-123");
        trailing.set("grpc-retry-pushback-ms", "2500");
        const error: Partial<ServiceError> = {
          code: status.INVALID_ARGUMENT,
          details: "max_tokens: got 4096, allowed 1..2047",
          metadata: trailing,
        };
        callback(error as ServiceError, null);
      },
      streamText: (call) => {
        record(call);
        let sent = 0;
        const timer = setInterval(() => {
          if (sent === 3 && call.request.prompt === "short") {
            clearInterval(timer);
            call.end();
            return;
          }
          call.write(text.StreamTextResponse.fromPartial({ text: `t${sent++}` }));
        }, 10);
        call.on("cancelled", () => {
          clearInterval(timer);
          this.cancelled += 1;
        });
      },
    };
    const unimplemented = (_call: unknown, callback: (error: ServiceError) => void) =>
      callback({ code: status.UNIMPLEMENTED } as ServiceError);
    const modelService: models.ModelServiceServer = {
      listModels: (call, callback) => {
        record(call);
        const family = call.metadata.get("application")[0];
        if (family === "studio") {
          callback({ code: status.NOT_FOUND, details: "no application studio" } as ServiceError, null);
          return;
        }
        callback(null, models.ListModelsResponse.fromPartial({ models: [{ id: `${family}-model` }] }));
      },
      loadModel: unimplemented,
      unloadModel: unimplemented,
      loadAdapter: unimplemented,
      unloadAdapter: unimplemented,
      cacheStats: unimplemented,
      clearCache: unimplemented,
    };
    this.server.addService(text.TextServiceService, textService);
    this.server.addService(models.ModelServiceService, modelService);
  }

  start(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (error, port) => {
        if (error) reject(error);
        else {
          this.port = port;
          resolve();
        }
      });
    });
  }

  get target(): string {
    return `127.0.0.1:${this.port}`;
  }

  last(): Metadata {
    const seen = this.seen.at(-1);
    assert.ok(seen, "the server saw no call");
    return seen.metadata;
  }

  async waitCancelled(count: number): Promise<void> {
    for (let i = 0; i < 100 && this.cancelled < count; i++) await sleep(10);
    assert.equal(this.cancelled, count);
  }
}

const header = (metadata: Metadata, key: string) => metadata.get(key).map(String);

describe("against an in-process server", () => {
  const stack = new FakeStack();
  let client: MaestroClient;

  before(async () => {
    await stack.start();
    client = new MaestroClient({ target: stack.target, apiKey: "mae_secret", timeoutMs: 5_000 });
  });
  after(() => {
    client.close();
    stack.server.forceShutdown();
  });

  test("a call carries its application, key, timeout and model", async () => {
    const before = Date.now();
    const reply = await client.text.generateText({ prompt: "hi", model: "tiny-llm" }, { timeoutMs: 1_500 });
    assert.equal(reply.text, "echo hi");
    const metadata = stack.last();
    assert.deepEqual(header(metadata, "application"), ["text"]);
    assert.deepEqual(header(metadata, "authorization"), ["Bearer mae_secret"]);
    assert.deepEqual(header(metadata, "x-maestro-timeout-ms"), ["1500"]);
    assert.deepEqual(header(metadata, "multiplexed_model_id"), ["tiny-llm"]);
    assert.deepEqual(header(metadata, "x-maestro-cache"), []);
    const deadline = stack.seen.at(-1)!.deadline;
    assert.ok(deadline >= before + 1_000 && deadline <= Date.now() + 1_600, `deadline ${deadline - before} ms`);
  });

  test("no model, no routing header; no timeout, no deadline; extra metadata passes", async () => {
    const unlimited = new MaestroClient({ target: stack.target, apiKey: "", timeoutMs: null, cache: "bypass" });
    try {
      await unlimited.text.generateText({ prompt: "hi", model: "é".repeat(3) }, { metadata: { "x-request-id": "mine" } });
    } finally {
      unlimited.close();
    }
    const metadata = stack.last();
    assert.deepEqual(header(metadata, "multiplexed_model_id"), []);
    assert.deepEqual(header(metadata, "x-maestro-timeout-ms"), []);
    assert.deepEqual(header(metadata, "authorization"), []);
    assert.deepEqual(header(metadata, "x-maestro-cache"), ["bypass"]);
    assert.deepEqual(header(metadata, "x-request-id"), ["mine"]);
    assert.equal(stack.seen.at(-1)!.deadline, Infinity);
  });

  test("a failure is a MaestroError with code, details and request id", async () => {
    const error = await client.text.generateText({ prompt: "bad" }).catch((e: unknown) => e);
    assert.ok(error instanceof MaestroError, String(error));
    assert.equal(error.code, status.INVALID_ARGUMENT);
    assert.equal(error.codeName, "INVALID_ARGUMENT");
    assert.match(error.details, /^max_tokens/);
    assert.equal(error.requestId, "rid-123");
    assert.equal(error.retryAfterMs, 2500);
    assert.equal(error.message, "INVALID_ARGUMENT: max_tokens: got 4096, allowed 1..2047");
  });

  test("a stream is an async iterator that ends with the call", async () => {
    const parts: string[] = [];
    for await (const chunk of client.text.streamText({ prompt: "short" })) parts.push(chunk.text);
    assert.deepEqual(parts, ["t0", "t1", "t2"]);
    assert.deepEqual(header(stack.last(), "application"), ["text"]);
  });

  test("leaving a stream early cancels the call", async () => {
    const cancelled = stack.cancelled;
    for await (const chunk of client.text.streamText({ prompt: "long" })) {
      assert.equal(chunk.text, "t0");
      break;
    }
    await stack.waitCancelled(cancelled + 1);
  });

  test("an AbortSignal cancels a stream and rejects with its reason", async () => {
    const cancelled = stack.cancelled;
    const controller = new AbortController();
    const seen: string[] = [];
    await assert.rejects(
      (async () => {
        for await (const chunk of client.text.streamText({ prompt: "long" }, { signal: controller.signal })) {
          seen.push(chunk.text);
          if (seen.length === 2) controller.abort();
        }
      })(),
      { name: "AbortError" },
    );
    assert.deepEqual(seen, ["t0", "t1"]);
    await stack.waitCancelled(cancelled + 1);
  });

  test("an aborted signal makes no call", async () => {
    const calls = stack.seen.length;
    const signal = AbortSignal.abort(new Error("stop"));
    await assert.rejects(client.text.generateText({ prompt: "hi" }, { signal }), { message: "stop" });
    await assert.rejects(client.text.streamText({ prompt: "hi" }, { signal }).next(), { message: "stop" });
    assert.equal(stack.seen.length, calls);
  });

  test("listModels merges the families and skips an absent one", async () => {
    const ids = (await client.listModels()).map((m) => m.id);
    assert.deepEqual(ids, ["text-model", "image-model", "voice-model"]);
  });

  test("a family client made alone has its own channel", async () => {
    const alone = new TextClient({ target: stack.target, apiKey: "k" });
    try {
      assert.equal((await alone.generateText({ prompt: "x" })).text, "echo x");
      assert.deepEqual(header(stack.last(), "authorization"), ["Bearer k"]);
    } finally {
      alone.close();
    }
  });

  test("a deadline that passes is DEADLINE_EXCEEDED", async () => {
    const stream = client.text.streamText({ prompt: "long" }, { timeoutMs: 50 });
    const error = await (async () => {
      for await (const _ of stream);
    })().catch((e: unknown) => e);
    assert.ok(error instanceof MaestroError, String(error));
    assert.equal(error.codeName, "DEADLINE_EXCEEDED");
  });
});

describe("environment", () => {
  test("the key: MAESTRO_API_KEY, else the key file, else none", () => {
    const dir = mkdtempSync(join(tmpdir(), "maestro-key-"));
    const file = join(dir, "api_key");
    writeFileSync(file, "mae_from_file\n");
    assert.equal(defaultApiKey({ MAESTRO_API_KEY: " mae_env ", MAESTRO_API_KEY_FILE: file }), "mae_env");
    assert.equal(defaultApiKey({ MAESTRO_API_KEY: "", MAESTRO_API_KEY_FILE: file }), "mae_from_file");
    assert.equal(defaultApiKey({ MAESTRO_API_KEY_FILE: join(dir, "missing") }), undefined);
  });

  test("the target: MAESTRO_TARGET, else 127.0.0.1:9000", () => {
    assert.equal(defaultTarget({ MAESTRO_TARGET: "maestro:9000" }), "maestro:9000");
    assert.equal(defaultTarget({ MAESTRO_TARGET: "" }), "127.0.0.1:9000");
  });

  test("an unknown cache mode is refused", () => {
    assert.throws(() => new MaestroClient({ cache: "sometimes" as never }), TypeError);
  });
});
