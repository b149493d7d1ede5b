import { readFileSync } from "node:fs";
import type { DatabaseTarget } from "./db/database.js";
import type { FloodLimit } from "./gateway/stream-limits.js";

/** Everything the control plane reads from its environment, validated once at start. */
export interface ControlPlaneConfig {
  readonly database: DatabaseTarget;
  /** NATS server URL(s), comma-separated. */
  readonly natsUrl: string;
  /** Subject prefix on NATS; lets several networks or test runs share one server. */
  readonly natsPrefix: string;
  readonly host: string;
  readonly port: number;
  /** Identifies this replica (random per process unless set). */
  readonly replicaId: string;
  readonly heartbeatIntervalMs: number;
  /** Silence after which a node is declared lost. */
  readonly lostAfterMs: number;
  /** How long a node whose stream closed may take to reconnect before its tasks move. */
  readonly reconnectGraceMs: number;
  readonly logLevel: string;
  /** How often the pool autoscaler runs a round without being woken. Default 1000 ms. */
  readonly autoscalerIntervalMs?: number;
  /** Messages per second one worker stream may send; default 5000/s with bursts of 20000. */
  readonly workerFloodLimit?: FloodLimit;
  /** Webhooks may reach loopback and private addresses (NGPU_WEBHOOK_ALLOW_PRIVATE=1); default no. */
  readonly webhookAllowPrivateTargets?: boolean;
  /** TLS certificate chain and key (PEM), from the files NGPU_TLS_CERT and NGPU_TLS_KEY; absent: plaintext. */
  readonly tls?: { readonly cert: Buffer; readonly key: Buffer };
}

function readPem(env: Env, name: string): Buffer {
  const path = env[name] ?? "";
  try {
    return readFileSync(path);
  } catch (err) {
    throw new ConfigError(`${name}: cannot read ${JSON.stringify(path)}: ${(err as Error).message}`);
  }
}

function tlsConfig(tls: { cert: Buffer; key: Buffer } | undefined): { tls?: { cert: Buffer; key: Buffer } } {
  return tls ? { tls } : {};
}

/** Both NGPU_TLS_CERT and NGPU_TLS_KEY, or neither. */
function loadTls(env: Env): { cert: Buffer; key: Buffer } | undefined {
  const cert = env.NGPU_TLS_CERT ?? "";
  const key = env.NGPU_TLS_KEY ?? "";
  if (cert === "" && key === "") return undefined;
  if (cert === "" || key === "") throw new ConfigError("NGPU_TLS_CERT and NGPU_TLS_KEY go together: set both (PEM files) or neither");
  return { cert: readPem(env, "NGPU_TLS_CERT"), key: readPem(env, "NGPU_TLS_KEY") };
}

export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

type Env = Readonly<Record<string, string | undefined>>;

function integer(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) throw new ConfigError(`${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(raw)}`);
  return value;
}

function flag(env: Env, name: string): boolean {
  const raw = (env[name] ?? "").toLowerCase();
  if (raw === "" || raw === "0" || raw === "false") return false;
  if (raw === "1" || raw === "true") return true;
  throw new ConfigError(`${name} must be 1 or 0, got ${JSON.stringify(env[name])}`);
}

/** Splits "host:port" (IPv6 in brackets). */
export function parseListen(name: string, value: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(value);
  const port = Number(match?.[3]);
  if (!match || !Number.isInteger(port) || port < 0 || port > 65535) throw new ConfigError(`${name} must be HOST:PORT, got ${JSON.stringify(value)}`);
  return { host: match[1] ?? (match[2] || "0.0.0.0"), port };
}

/**
 * Reads the control plane's configuration. DATABASE_URL and NATS_URL are
 * required unless defaults are given (the local dev network passes its own).
 */
export function loadControlPlaneConfig(env: Env, defaults: { database?: DatabaseTarget; natsUrl?: string } = {}): ControlPlaneConfig {
  const databaseUrl = env.DATABASE_URL;
  let database: DatabaseTarget;
  if (databaseUrl) {
    if (!/^postgres(ql)?:\/\//.test(databaseUrl)) throw new ConfigError("DATABASE_URL must be a postgres:// URL");
    database = { kind: "postgres", url: databaseUrl, poolSize: integer(env, "NGPU_DB_POOL_SIZE", 10, 1, 200) };
  } else if (defaults.database) {
    database = defaults.database;
  } else {
    throw new ConfigError("DATABASE_URL is not set: point it at the Postgres database (e.g. postgres://user@host:5432/ngpu)");
  }
  const natsUrl = env.NATS_URL || defaults.natsUrl;
  if (!natsUrl) throw new ConfigError("NATS_URL is not set: point it at the NATS server (e.g. nats://127.0.0.1:4222)");
  const prefix = env.NGPU_NATS_PREFIX || "ngpu";
  if (!/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/.test(prefix)) throw new ConfigError("NGPU_NATS_PREFIX must be NATS subject tokens (letters, digits, _ and -, separated by dots)");
  const { host, port } = parseListen("NGPU_LISTEN", env.NGPU_LISTEN || "127.0.0.1:7700");
  return {
    database,
    natsUrl,
    natsPrefix: prefix,
    host,
    port,
    replicaId: env.NGPU_REPLICA_ID || "",
    heartbeatIntervalMs: integer(env, "NGPU_HEARTBEAT_INTERVAL_MS", 1_000, 100, 60_000),
    lostAfterMs: integer(env, "NGPU_LOST_AFTER_MS", 3_000, 300, 600_000),
    reconnectGraceMs: integer(env, "NGPU_RECONNECT_GRACE_MS", 1_000, 0, 600_000),
    logLevel: env.NGPU_LOG_LEVEL || "info",
    webhookAllowPrivateTargets: flag(env, "NGPU_WEBHOOK_ALLOW_PRIVATE"),
    autoscalerIntervalMs: integer(env, "NGPU_AUTOSCALER_INTERVAL_MS", 1_000, 50, 600_000),
    ...tlsConfig(loadTls(env)),
    workerFloodLimit: {
      perSecond: integer(env, "NGPU_WORKER_MAX_MESSAGES_PER_SECOND", 5_000, 10, 1_000_000),
      burst: integer(env, "NGPU_WORKER_MESSAGE_BURST", 20_000, 10, 10_000_000),
    },
  };
}
