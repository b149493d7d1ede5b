// Telemetry load generator (a child process of the bench): opens one gRPC
// WorkerService.Connect stream per simulated node, each on its own HTTP/2
// connection as real workers do, says Hello with GPU_PER_NODE simulated GPUs,
// then sends a TelemetryReport for all its GPUs and a Heartbeat every second,
// each node at its own phase within the second. It speaks gRPC over node:http2
// directly and builds reports from pre-encoded readings (only the timestamp
// changes), so that generating the load costs little CPU on the shared cores;
// the control plane side is the real one.
//
//   node --import tsx bench/telemetry-load.ts URL ENROLLMENT_TOKEN GPUS_PER_NODE MAX_SECONDS
import http2 from "node:http2";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs, TimestampSchema } from "@bufbuild/protobuf/wkt";
import { GpuTelemetrySchema } from "../gen/ngpu/v1/gpu_pb.js";
import { ConnectRequestSchema, ConnectResponseSchema } from "../gen/ngpu/v1/worker_pb.js";
import { createSimulatedGpuReader, parseSimulatedGpuSpec } from "../worker/gpu/simulated-gpu.js";
import { sampleToProto } from "../worker/telemetry/telemetry-loop.js";
import type { FromLoad, LoadStats, ToLoad } from "./ipc.js";
import { newNodeKey } from "../test/helpers/node-key.js";

const [url = "", token = "", gpusText = "8", maxSecondsText = "600"] = process.argv.slice(2);
const gpusPerNode = Math.max(1, Math.min(64, Number(gpusText)));
const send = (m: FromLoad) => process.send?.(m);
const PERIOD_MS = 1000;
/** A node whose stream has this much unsent data skips its report (counted): the control plane is not reading. */
const MAX_BUFFERED_BYTES = 4 * 1024 * 1024;

function varint(n: number): Buffer {
  const bytes: number[] = [];
  while (n > 0x7f) {
    bytes.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  bytes.push(n);
  return Buffer.from(bytes);
}

/** A length-delimited protobuf field: tag, length, bytes. */
function field(fieldNumber: number, body: Buffer | Uint8Array): Buffer[] {
  return [Buffer.from([(fieldNumber << 3) | 2]), varint(body.length), Buffer.from(body)];
}

/** A gRPC length-prefixed message (uncompressed). */
function grpcFrame(message: Uint8Array): Buffer {
  const header = Buffer.alloc(5);
  header.writeUInt32BE(message.length, 1);
  return Buffer.concat([header, message]);
}

interface SimNode {
  readonly name: string;
  readonly session: http2.ClientHttp2Session;
  readonly stream: http2.ClientHttp2Stream;
  /** Each GPU's reading without its time field (field 3), encoded once. */
  readonly readings: readonly Buffer[];
  nextDue: number;
  seq: number;
  open: boolean;
}

const nodes: SimNode[] = [];
const counters = { reports: 0, readings: 0, heartbeats: 0, rejections: 0, streamErrors: 0, skipped: 0, maxLateMs: 0 };
let stopping = false;

/** TelemetryReport (as ConnectRequest.telemetry) for all of a node's GPUs, read "now". */
function telemetryFrame(node: SimNode, nowMs: number): Buffer {
  const time = Buffer.concat(field(3, toBinary(TimestampSchema, timestampFromMs(nowMs))));
  const parts: Buffer[] = [];
  for (const r of node.readings) parts.push(...field(1, Buffer.concat([r, time])));
  const report = Buffer.concat(parts);
  return grpcFrame(Buffer.concat(field(3, report)));
}

function heartbeatFrame(node: SimNode, nowMs: number): Buffer {
  node.seq++;
  return grpcFrame(
    toBinary(ConnectRequestSchema, create(ConnectRequestSchema, { message: { case: "heartbeat", value: { seq: BigInt(node.seq), time: timestampFromMs(nowMs), warmAppIds: [] } } })),
  );
}

async function openNode(index: number): Promise<SimNode> {
  const name = `telemetry-sim-${index}`;
  const reader = createSimulatedGpuReader({ ...parseSimulatedGpuSpec(`NVIDIA GeForce RTX 4090:24GiB:${gpusPerNode}`) }, { node: name });
  const reading = await reader.read();
  const readings = reading.samples.map((s) => {
    const t = create(GpuTelemetrySchema, sampleToProto(s));
    t.time = undefined;
    return Buffer.from(toBinary(GpuTelemetrySchema, t));
  });
  const key = newNodeKey();
  const hello = toBinary(
    ConnectRequestSchema,
    create(ConnectRequestSchema, {
      message: {
        case: "hello",
        value: {
          enrollmentToken: token,
          publicKey: key.publicKey,
          name,
          gpus: reading.gpus.map((g) => ({ index: g.index, uuid: g.uuid, model: g.model, memoryTotalBytes: BigInt(g.memoryTotalBytes), simulated: true })),
          runtimes: ["builtin"],
          maxConcurrentTasks: gpusPerNode,
          version: "bench-telemetry",
        },
      },
    }),
  );
  const session = http2.connect(url);
  session.on("error", () => {});
  const stream = session.request({ ":method": "POST", ":path": "/ngpu.v1.WorkerService/Connect", "content-type": "application/grpc+proto", te: "trailers" });
  const node: SimNode = { name, session, stream, readings, nextDue: 0, seq: 0, open: false };
  return new Promise<SimNode>((resolve, reject) => {
    let pending = Buffer.alloc(0);
    const timer = setTimeout(() => reject(new Error(`${name}: no welcome within 60 s`)), 60_000);
    stream.on("data", (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= 5) {
        const len = pending.readUInt32BE(1);
        if (pending.length < 5 + len) break;
        const m = fromBinary(ConnectResponseSchema, pending.subarray(5, 5 + len));
        pending = pending.subarray(5 + len);
        if (m.message.case === "challenge") {
          const proof = create(ConnectRequestSchema, { message: { case: "proof", value: { signature: key.prove(m.message.value.nonce) } } });
          stream.write(grpcFrame(toBinary(ConnectRequestSchema, proof)));
        } else if (m.message.case === "welcome") {
          clearTimeout(timer);
          node.open = true;
          node.nextDue = performance.now() + Math.random() * PERIOD_MS;
          resolve(node);
        } else if (m.message.case === "rejection") {
          counters.rejections++;
        }
      }
    });
    const closed = (err?: Error) => {
      if (node.open && !stopping) counters.streamErrors++;
      node.open = false;
      clearTimeout(timer);
      reject(err ?? new Error(`${name}: stream closed before welcome`));
    };
    stream.on("error", closed);
    stream.on("close", () => closed());
    stream.write(grpcFrame(hello));
  });
}

/** Self-check: the hand-built frame must decode to what a worker sends. */
function checkEncoding(node: SimNode): void {
  const frame = telemetryFrame(node, Date.now());
  const m = fromBinary(ConnectRequestSchema, frame.subarray(5));
  if (m.message.case !== "telemetry" || m.message.value.gpus.length !== gpusPerNode || !m.message.value.gpus.every((g) => g.time && g.uuid)) {
    throw new Error("telemetry frame does not decode as a TelemetryReport of every GPU");
  }
}

// One 10 ms tick sends for every node whose second has come round.
const ticker = setInterval(() => {
  const now = performance.now();
  const wall = Date.now();
  for (const node of nodes) {
    if (!node.open || now < node.nextDue) continue;
    const late = now - node.nextDue;
    if (late > counters.maxLateMs) counters.maxLateMs = late;
    node.nextDue += PERIOD_MS;
    if (node.nextDue < now) node.nextDue = now + PERIOD_MS; // fell a whole period behind: do not burst
    if (node.stream.writableLength > MAX_BUFFERED_BYTES) {
      counters.skipped++;
      continue;
    }
    node.stream.write(telemetryFrame(node, wall));
    node.stream.write(heartbeatFrame(node, wall));
    counters.reports++;
    counters.readings += node.readings.length;
    counters.heartbeats++;
  }
}, 10);

function stats(): LoadStats {
  const cpu = process.cpuUsage();
  const out: LoadStats = {
    atMs: performance.timeOrigin + performance.now(),
    open: nodes.filter((n) => n.open).length,
    reports: counters.reports,
    readings: counters.readings,
    heartbeats: counters.heartbeats,
    buffered: nodes.reduce((s, n) => s + n.stream.writableLength, 0),
    rejections: counters.rejections,
    streamErrors: counters.streamErrors,
    skipped: counters.skipped,
    maxLateMs: counters.maxLateMs,
    cpuS: (cpu.user + cpu.system) / 1e6,
  };
  counters.maxLateMs = 0;
  return out;
}

async function grow(target: number): Promise<void> {
  const t0 = performance.now();
  let failed = 0;
  const from = nodes.length;
  let next = from;
  const lane = async () => {
    while (next < target && !stopping) {
      const i = next++;
      try {
        const node = await openNode(i);
        if (nodes.length === from) checkEncoding(node);
        nodes.push(node);
      } catch {
        failed++;
        if (failed > 50) return;
      }
    }
  };
  await Promise.all(Array.from({ length: 16 }, lane));
  send({ type: "grown", nodes: nodes.length, welcomed: nodes.length - from, failed, ms: performance.now() - t0 });
}

async function stop(code: number): Promise<never> {
  if (!stopping) {
    stopping = true;
    clearInterval(ticker);
    for (const n of nodes) {
      n.stream.close();
      n.session.close();
    }
    send({ type: "stopped" });
  }
  setTimeout(() => process.exit(code), 200);
  return new Promise<never>(() => {});
}

process.on("message", (m: ToLoad) => {
  if (m.type === "grow") void grow(m.nodes);
  else if (m.type === "stats") send({ type: "stats", stats: stats() });
  else if (m.type === "stop") void stop(0);
});
process.on("disconnect", () => void stop(0));
setTimeout(() => void stop(3), Number(maxSecondsText) * 1000).unref();
