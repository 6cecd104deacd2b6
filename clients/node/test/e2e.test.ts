/**
 * End to end: the Node client against a running stack (tests/e2e runs this
 * file on the session's `serve run`). MAESTRO_TARGET names the stack and
 * MAESTRO_API_KEY its key; without MAESTRO_TARGET the file skips.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";

import {
  AudioFormat,
  FinishReason,
  MaestroClient,
  MaestroError,
  ModelFamily,
  status,
  type text,
} from "@maestro/client";

const TARGET = process.env.MAESTRO_TARGET;
const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
// 1500 digits, one token each in the demo tokenizer: a generation certain to
// still be running seconds later (a random model may otherwise stop anytime).
const LONG = { regex: "[0-9]{1500}", maxTokens: 1800 };
const SMALL_IMAGE = { width: 64, height: 64, steps: 2 };
const EXAMPLE = fileURLToPath(new URL("../../examples/quickstart.mjs", import.meta.url));

async function drain<T>(stream: AsyncIterable<T>): Promise<T[]> {
  const all: T[] = [];
  for await (const message of stream) all.push(message);
  return all;
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => assert.fail("the call succeeded"),
    (error: unknown) => error,
  );
}

describe("against the stack", { skip: TARGET ? false : "set MAESTRO_TARGET to a running stack" }, () => {
  let client: MaestroClient;

  /** Requests the text engine still holds (its ListModels stats). */
  async function unfinished(): Promise<number> {
    // The default model's counter (ListModels lists every registered one).
    const model = (await client.text.listModels()).find((m) => m.stats["default"] === "true");
    return Number(model?.stats["unfinished_requests"]);
  }

  async function textIdle(timeoutMs = 15_000): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    let left = await unfinished();
    while (left && Date.now() < deadline) {
      await sleep(100);
      left = await unfinished();
    }
    return left;
  }

  before(() => {
    client = new MaestroClient({ timeoutMs: 60_000 });
  });
  after(() => client.close());

  test("unary and streamed text agree", async () => {
    const params = { prompt: "the quick fox", maxTokens: 16, temperature: 0 };
    const whole = await client.text.generateText(params);
    assert.ok([FinishReason.FINISH_REASON_STOP, FinishReason.FINISH_REASON_LENGTH].includes(whole.finishReason));
    assert.ok(whole.usage && whole.usage.completionTokens > 0 && whole.requestId);
    const chunks = (await drain(client.text.streamText(params))).filter((c) => !c.modelLoad);
    assert.equal(chunks.map((c) => c.text).join(""), whole.text);
    const last = chunks.at(-1) as text.StreamTextResponse;
    assert.equal(last.finishReason, whole.finishReason);
    assert.deepEqual(last.usage, whole.usage);
    assert.ok(chunks.slice(0, -1).every((c) => !c.finishReason));
  });

  test("every family's models, merged", async () => {
    const models = await client.listModels();
    const families = new Set(models.map((m) => m.family));
    for (const family of [ModelFamily.FAMILY_TEXT, ModelFamily.FAMILY_IMAGE, ModelFamily.FAMILY_VOICE, ModelFamily.FAMILY_STUDIO]) {
      assert.ok(families.has(family), `no model of family ${family}`);
    }
    assert.ok(models.some((m) => m.id === "maestro-demo-llm" && m.ready));
  });

  test("an image: a PNG of the asked size", async () => {
    const reply = await client.image.generateImage({ prompt: "a red box", seed: 11n, ...SMALL_IMAGE });
    const [image] = reply.images;
    assert.ok(image, "no image");
    assert.equal(image.mimeType, "image/png");
    assert.ok(image.data.subarray(0, 8).equals(PNG_SIGNATURE), "not a PNG");
    // IHDR: width and height, big-endian, at bytes 16..24.
    assert.deepEqual([image.data.readUInt32BE(16), image.data.readUInt32BE(20)], [64, 64]);
    assert.deepEqual([image.width, image.height, image.seed], [64, 64, 11n]);
  });

  test("a video: step progress, then an MP4 of the asked frames", async () => {
    const events = await drain(
      client.image.streamVideo({ prompt: "a red box", seed: 5n, numFrames: 3, steps: 2, fps: 6 }),
    );
    const kinds = events.map((e) => e.event?.$case);
    assert.deepEqual(kinds.slice(-3), ["progress", "progress", "result"]);
    const last = events.at(-1)?.event;
    assert.ok(last?.$case === "result" && last.value.video, "no video");
    const video = last.value.video;
    assert.equal(video.mimeType, "video/mp4");
    // An MP4 opens with an ISO-BMFF `ftyp` box: size (4 bytes), then "ftyp".
    assert.equal(video.data.subarray(4, 8).toString("latin1"), "ftyp");
    assert.deepEqual([video.numFrames, video.fps, video.seed], [3, 6, 5n]);
  });

  test("streamed speech: audio chunks, then the last", async () => {
    const chunks = (
      await drain(
        client.voice.streamSpeech({
          text: "The quick brown fox jumps. She sells sea shells! The ragged rascal ran.",
          seed: 8n,
          format: AudioFormat.AUDIO_FORMAT_PCM_S16LE,
        }),
      )
    ).filter((c) => !c.modelLoad);
    assert.deepEqual(chunks.map((c) => c.segmentIndex), [0, 1, 2]);
    assert.deepEqual(chunks.map((c) => c.last), [false, false, true]);
    for (const chunk of chunks) {
      assert.ok(chunk.audio.length > 0 && chunk.audio.length % 2 === 0, "no s16le audio");
      assert.equal(chunk.info?.format, AudioFormat.AUDIO_FORMAT_PCM_S16LE);
      assert.ok((chunk.info?.sampleRate ?? 0) > 0);
    }
  });

  test("a Compose: the plan, a scene's image and audio, then done", async () => {
    const events = await drain(
      client.studio.compose(
        { brief: "a lighthouse keeper befriends a comet", numScenes: 1, seed: 7n, image: SMALL_IMAGE },
        { timeoutMs: 120_000 },
      ),
    );
    const kinds = events.map((e) => e.event?.$case);
    assert.equal(kinds[0], "plan", String(kinds));
    assert.equal(kinds.at(-1), "done", String(kinds));
    assert.deepEqual([...kinds.slice(1, -1)].sort(), ["sceneAudio", "sceneImage"]);
    for (const { event } of events) {
      if (event?.$case === "plan") assert.equal(event.value.scenes.length, 1);
      if (event?.$case === "sceneImage") assert.ok(event.value.image?.data.subarray(0, 8).equals(PNG_SIGNATURE));
      if (event?.$case === "sceneAudio") assert.equal(event.value.audio.subarray(0, 4).toString(), "RIFF");
      if (event?.$case === "done") assert.deepEqual([event.value.scenesSucceeded, event.value.scenesFailed], [1, 0]);
    }
  });

  test("a deadline that passes mid-stream is DEADLINE_EXCEEDED, and the engine stops", async () => {
    const error = await rejection(drain(client.text.streamText({ prompt: "a long story", ...LONG }, { timeoutMs: 1_000 })));
    assert.ok(error instanceof MaestroError, String(error));
    assert.equal(error.code, status.DEADLINE_EXCEEDED);
    const tiny = await rejection(client.text.generateText({ prompt: "hi", maxTokens: 4 }, { timeoutMs: 1 }));
    assert.ok(tiny instanceof MaestroError && tiny.codeName === "DEADLINE_EXCEEDED", String(tiny));
    assert.equal(await textIdle(), 0);
  });

  test("an AbortSignal ends a stream early and the engine stops", async () => {
    const controller = new AbortController();
    let received = 0;
    const error = await rejection(
      (async () => {
        for await (const chunk of client.text.streamText({ prompt: "another long story", ...LONG }, { signal: controller.signal })) {
          if (chunk.modelLoad) continue;
          received += 1;
          // Abort at once: no other call while the stream is open (a
          // ListModels here once took the whole 60 s deadline in CI). The
          // 1,500 forced digits run far longer than textIdle's 15 s bound
          // below, so reaching idle within it shows the abort stopped vLLM.
          if (received === 1) controller.abort();
        }
      })(),
    );
    assert.equal((error as Error).name, "AbortError");
    assert.ok(received >= 1);
    assert.equal(await textIdle(), 0);
  });

  test("a bad input is INVALID_ARGUMENT naming the field, with a request id", async () => {
    const error = await rejection(client.text.generateText({ prompt: "x", maxTokens: 4096 }));
    assert.ok(error instanceof MaestroError, String(error));
    assert.equal(error.code, status.INVALID_ARGUMENT);
    assert.equal(error.codeName, "INVALID_ARGUMENT");
    assert.match(error.details, /max_tokens/);
    assert.doesNotMatch(error.details, /Traceback/);
    assert.match(error.requestId, /^[0-9a-f]{32}$/);
    const streamed = await rejection(drain(client.text.streamText({ prompt: "x", maxTokens: 0 })));
    assert.ok(streamed instanceof MaestroError && streamed.code === status.INVALID_ARGUMENT, String(streamed));
    assert.match(streamed.details, /max_tokens/);
    // No request id here: Ray's ingress drops a failed stream's trailing
    // metadata (the Python client sees the same).
  });

  test("a wrong API key is UNAUTHENTICATED", async () => {
    const stranger = new MaestroClient({ apiKey: "mae_not_a_key", timeoutMs: 10_000 });
    try {
      const error = await rejection(stranger.text.generateText({ prompt: "hi", maxTokens: 2 }));
      assert.ok(error instanceof MaestroError && error.code === status.UNAUTHENTICATED, String(error));
    } finally {
      stranger.close();
    }
  });

  test("the README example streams text", async () => {
    const { stdout } = await promisify(execFile)(process.execPath, [EXAMPLE, "Once upon a time"], {
      env: process.env,
      timeout: 60_000,
    });
    assert.match(stdout, /\[\d+ prompt \+ [1-9]\d* completion tokens, request [0-9a-f]{32}\]/);
  });
});
