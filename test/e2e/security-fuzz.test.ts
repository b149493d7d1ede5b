// A bounded fuzz test over every public RPC: random and mutated protobuf and
// Connect JSON bodies (fixed seed), checking that the control plane never
// crashes, never answers INTERNAL, and writes nothing when it refuses a call.
import type { DescMessage, DescMethod, DescService } from "@bufbuild/protobuf";
import http2 from "node:http2";
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { file_grpc_health_v1_health } from "../../gen/grpc/health/v1/health_pb.js";
import { file_ngpu_v1_app } from "../../gen/ngpu/v1/app_pb.js";
import { file_ngpu_v1_key } from "../../gen/ngpu/v1/key_pb.js";
import { file_ngpu_v1_limits } from "../../gen/ngpu/v1/limits_pb.js";
import { file_ngpu_v1_node } from "../../gen/ngpu/v1/node_pb.js";
import { file_ngpu_v1_pool } from "../../gen/ngpu/v1/pool_pb.js";
import { file_ngpu_v1_telemetry } from "../../gen/ngpu/v1/telemetry_pb.js";
import { file_ngpu_v1_task } from "../../gen/ngpu/v1/task_pb.js";
import { file_ngpu_v1_usage } from "../../gen/ngpu/v1/usage_pb.js";
import { file_ngpu_v1_webhook } from "../../gen/ngpu/v1/webhook_pb.js";
import { file_ngpu_v1_worker } from "../../gen/ngpu/v1/worker_pb.js";
import { createFuzzer } from "../helpers/fuzz.js";
import { startTestNetwork, type TestNetwork } from "../helpers/network.js";

const SEED = 20261203;
const MAX_CASES = 3_000;
/** Fewer than this within the time budget and the run proves too little (a loaded 2-core machine does ~1500). */
const MIN_CASES = 300;
const TIME_BUDGET_MS = 20_000;
/** Methods that may legitimately keep a stream open (they are cut after this long). */
const STREAM_CUT_MS = 100;

const SERVICES: DescService[] = [file_ngpu_v1_task, file_ngpu_v1_app, file_ngpu_v1_node, file_ngpu_v1_key, file_ngpu_v1_limits, file_ngpu_v1_webhook, file_ngpu_v1_usage, file_ngpu_v1_pool, file_ngpu_v1_telemetry, file_ngpu_v1_worker, file_grpc_health_v1_health].flatMap(
  (f) => f.services,
);

function envelope(payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(5 + payload.length);
  new DataView(out.buffer).setUint32(1, payload.length);
  out.set(payload, 5);
  return out;
}

interface Reply {
  readonly status: number;
  readonly body: Buffer;
}

/** One POST over HTTP/2 (bidi streams need it), cut after timeoutMs (then undefined). */
function post(session: http2.ClientHttp2Session, path: string, headers: Record<string, string>, body: Uint8Array, timeoutMs: number): Promise<Reply | undefined> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ":method": "POST", ":path": path, ...headers });
    const chunks: Buffer[] = [];
    let status = 0;
    const timer = setTimeout(() => {
      stream.close(http2.constants.NGHTTP2_CANCEL);
      resolve(undefined);
    }, timeoutMs);
    stream.on("response", (h) => (status = Number(h[":status"])));
    stream.on("data", (c: Buffer) => chunks.push(c));
    stream.on("end", () => {
      clearTimeout(timer);
      resolve({ status, body: Buffer.concat(chunks) });
    });
    stream.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    stream.end(body);
  });
}

/** The Connect error code of a response ("ok" when it succeeded). */
function outcome(res: Reply, streaming: boolean): string {
  const body = res.body;
  const ok = res.status === 200;
  if (!streaming) {
    if (ok) return "ok";
    try {
      return String((JSON.parse(body.toString("utf8")) as { code?: unknown }).code ?? `http ${res.status}`);
    } catch {
      return `http ${res.status}`;
    }
  }
  if (!ok) return `http ${res.status}`;
  // The last frame of a Connect stream is the end-of-stream JSON (flag 0x02).
  let offset = 0;
  let end = "ok";
  while (offset + 5 <= body.length) {
    const flags = body[offset]!;
    const length = body.readUInt32BE(offset + 1);
    const data = body.subarray(offset + 5, offset + 5 + length);
    if (flags & 0x02) {
      const parsed = JSON.parse(data.toString("utf8")) as { error?: { code?: string } };
      end = parsed.error?.code ?? "ok";
    }
    offset += 5 + length;
  }
  return end;
}

describe("security: bounded fuzz over every public RPC", () => {
  let net: TestNetwork;
  let session: http2.ClientHttp2Session;
  let countRows: () => Promise<number>;

  beforeAll(async () => {
    net = await startTestNetwork();
    session = http2.connect(net.url);
    // Every row written, changed or deleted bumps a sequence (a test-only trigger): one cheap read per case.
    const tables = await sql<{ table_name: string }>`
      SELECT table_name FROM information_schema.tables
      WHERE table_schema = 'public' AND table_type = 'BASE TABLE' AND table_name NOT LIKE 'kysely_%' AND table_name <> 'control_planes'`.execute(net.cp.db);
    await sql`CREATE SEQUENCE fuzz_writes`.execute(net.cp.db);
    await sql.raw(`CREATE FUNCTION fuzz_note_write() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM nextval('fuzz_writes'); RETURN NULL; END $$`).execute(net.cp.db);
    for (const { table_name: t } of tables.rows) {
      // A key's last-used time is bookkeeping of authentication, not a write the caller asked for.
      const events = t === "api_keys" ? "INSERT OR DELETE" : "INSERT OR UPDATE OR DELETE";
      await sql.raw(`CREATE TRIGGER fuzz_note_write AFTER ${events} ON "${t}" FOR EACH ROW EXECUTE FUNCTION fuzz_note_write()`).execute(net.cp.db);
    }
    countRows = async () => Number((await sql<{ n: string }>`SELECT last_value AS n FROM fuzz_writes`.execute(net.cp.db)).rows[0]!.n);
  });
  afterAll(async () => {
    session.close();
    await net.close();
  });

  it(`${MAX_CASES} cases (seed ${SEED}, at most ${TIME_BUDGET_MS / 1000} s): no crash, no INTERNAL, no row written on refusal`, async () => {
    const fuzz = createFuzzer(SEED);
    const methods: DescMethod[] = [];
    for (const service of SERVICES) {
      // Only what this control plane serves (a service another stream has not registered yet is skipped).
      const probe = await post(session, `/${service.typeName}/${service.methods[0]!.name}`, { "content-type": "application/json" }, new TextEncoder().encode("{}"), STREAM_CUT_MS);
      if (probe?.status === 404) continue;
      methods.push(...service.methods);
    }
    expect(methods.map((m) => `${m.parent.name}.${m.name}`)).toEqual(expect.arrayContaining(["TaskService.SubmitTask", "AppService.DeployApp", "KeyService.CreateKey", "NodeService.RevokeNode", "WorkerService.Connect"]));

    const seen = new Map<string, number>();
    const opened = new Map<string, number>();
    const timing = new Map<string, number>();
    const failures: string[] = [];
    let baseline = await countRows();
    const started = Date.now();
    let cases = 0;
    for (; cases < MAX_CASES && Date.now() - started < TIME_BUDGET_MS; cases++) {
      const method = methods[cases % methods.length]!;
      const input: DescMessage = method.input;
      const streaming = method.methodKind !== "unary";
      const kind = fuzz.int(5);
      let body: Uint8Array | string;
      let json: boolean;
      if (kind === 0) [body, json] = [fuzz.bytes(64), false];
      else if (kind === 1) [body, json] = [fuzz.mutateBytes(fuzz.message(input)), false];
      else if (kind === 2) [body, json] = [fuzz.message(input), false];
      else if (kind === 3) [body, json] = [JSON.stringify(fuzz.json(input)), true];
      else [body, json] = [fuzz.mutateText(JSON.stringify(fuzz.json(input))), true];
      const bytes = typeof body === "string" ? new TextEncoder().encode(body) : body;
      const contentType = streaming ? (json ? "application/connect+json" : "application/connect+proto") : json ? "application/json" : "application/proto";
      const headers: Record<string, string> = { "content-type": contentType, authorization: `Bearer ${net.apiKey}` };
      if (!streaming) headers["connect-protocol-version"] = "1";
      const t0 = performance.now();
      const res = await post(session, `/${method.parent.typeName}/${method.name}`, headers, streaming ? envelope(bytes) : bytes, streaming ? STREAM_CUT_MS : 10_000);
      // Cut while still open: a watch may stay open; a unary call must not hang.
      const code = res ? outcome(res, streaming) : streaming ? "open" : "hung";
      seen.set(code, (seen.get(code) ?? 0) + 1);
      if (code === "open") opened.set(method.name, (opened.get(method.name) ?? 0) + 1);
      const t1 = performance.now();
      const rows = await countRows();
      timing.set(method.name, (timing.get(method.name) ?? 0) + (t1 - t0));
      timing.set("(count)", (timing.get("(count)") ?? 0) + (performance.now() - t1));
      const label = `case ${cases} ${method.parent.name}.${method.name} ${json ? "json" : "proto"} ${Buffer.from(bytes).subarray(0, 120).toString(json ? "utf8" : "hex")}`;
      if (code === "internal" || code === "unknown" || code === "hung" || code.startsWith("http 5")) failures.push(`${label} → ${code}`);
      if (code !== "ok" && code !== "open" && rows !== baseline) failures.push(`${label} → ${code} but ${rows - baseline} rows written`);
      baseline = rows;
    }
    // Still alive and answering.
    const health = await fetch(`${net.url}/grpc.health.v1.Health/Check`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
    expect(health.status).toBe(200);
    console.log(`fuzz: ${cases} cases in ${Date.now() - started} ms over ${methods.length} methods:`, Object.fromEntries(seen), "left open:", Object.fromEntries(opened), [...timing.entries()].sort((a, b) => b[1] - a[1]).slice(0, 8).map(([k, v]) => `${k} ${Math.round(v)}ms`).join(", "));
    expect(failures).toEqual([]);
    expect(cases).toBeGreaterThanOrEqual(MIN_CASES);
    expect(seen.get("invalid_argument") ?? 0).toBeGreaterThan(cases / 4);
  }, 60_000);

  it("answers INVALID_ARGUMENT, naming the message type, to undecodable protobuf on Connect, gRPC and gRPC-Web", async () => {
    const garbage = new Uint8Array([0xff, 0xff, 0xff, 0xff, 0x0f, 0x0a, 0x99]);
    const auth = { authorization: `Bearer ${net.apiKey}` };
    const connect = await post(session, "/ngpu.v1.TaskService/GetTask", { ...auth, "content-type": "application/proto" }, garbage, 5_000);
    expect(connect?.status).toBe(400);
    expect(JSON.parse(connect!.body.toString())).toMatchObject({ code: "invalid_argument", message: expect.stringMatching(/^request: is not a valid ngpu\.v1\.GetTaskRequest message/) });
    const web = await post(session, "/ngpu.v1.TaskService/GetTask", { ...auth, "content-type": "application/grpc-web+proto" }, envelope(garbage), 5_000);
    expect(web!.body.toString()).toMatch(/grpc-status: 3\r\n/);
    const grpcStatus = await new Promise<string>((resolve, reject) => {
      const stream = session.request({ ":method": "POST", ":path": "/ngpu.v1.TaskService/GetTask", "content-type": "application/grpc", te: "trailers", ...auth });
      stream.on("trailers", (t) => resolve(`${String(t["grpc-status"])} ${decodeURIComponent(String(t["grpc-message"]))}`));
      stream.on("error", reject);
      stream.resume();
      stream.end(envelope(garbage));
    });
    expect(grpcStatus).toMatch(/^3 request: is not a valid ngpu\.v1\.GetTaskRequest message/);
  });

  it("refuses a message over the size limit on every RPC with RESOURCE_EXHAUSTED", async () => {
    const huge = new Uint8Array(4 * 1024 * 1024 + 16).fill(0x20);
    for (const service of [file_ngpu_v1_task, file_ngpu_v1_app, file_ngpu_v1_node, file_ngpu_v1_key, file_ngpu_v1_limits, file_ngpu_v1_webhook, file_ngpu_v1_usage, file_ngpu_v1_pool, file_ngpu_v1_telemetry].flatMap((f) => f.services)) {
      for (const method of service.methods) {
        const streaming = method.methodKind !== "unary";
        const headers = { "content-type": streaming ? "application/connect+json" : "application/json", authorization: `Bearer ${net.apiKey}` };
        const res = await post(session, `/${service.typeName}/${method.name}`, headers, streaming ? envelope(huge) : huge, 10_000);
        expect(res && outcome(res, streaming), `${service.name}.${method.name}`).toBe("resource_exhausted");
      }
    }
  });
});
