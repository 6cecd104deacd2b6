// Streams a completion from Maestro's text family to stdout.
//
//   cd clients/node && npm ci && npm run build
//   node examples/quickstart.mjs "Once upon a time"
//
// The target comes from MAESTRO_TARGET (default 127.0.0.1:9000), the key from
// MAESTRO_API_KEY or ~/.maestro/api_key.
import { MaestroClient, MaestroError } from "@maestro/client";

const prompt = process.argv[2] ?? "Once upon a time";
const client = new MaestroClient({ timeoutMs: 60_000 });
try {
  let last;
  for await (const chunk of client.text.streamText({ prompt, maxTokens: 32, temperature: 0.8 })) {
    process.stdout.write(chunk.text);
    last = chunk;
  }
  const usage = last?.usage;
  console.log(`\n[${usage?.promptTokens} prompt + ${usage?.completionTokens} completion tokens, request ${last?.requestId}]`);
} catch (error) {
  if (!(error instanceof MaestroError)) throw error;
  console.error(`${error.codeName}: ${error.details} (request ${error.requestId || "-"})`);
  process.exitCode = 1;
} finally {
  client.close();
}
