import type { Kysely, Migration } from "kysely";
import { runStatements } from "./run-statements.js";

/** Issues 2 and 3: the record of workspaces, apps, tasks, attempts and nodes. */
export const foundationMigrations: Record<string, Migration> = {
  "0001_foundation": {
    async up(db: Kysely<any>): Promise<void> {
      await runStatements(
        db,
        `
        CREATE TABLE workspaces (
          id text PRIMARY KEY,
          name text NOT NULL,
          created_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE TABLE api_keys (
          id text PRIMARY KEY,
          workspace_id text NOT NULL REFERENCES workspaces(id),
          name text NOT NULL DEFAULT '',
          secret_hash text NOT NULL,
          created_at timestamptz NOT NULL DEFAULT now(),
          last_used_at timestamptz,
          revoked_at timestamptz
        );
        CREATE TABLE enrollment_tokens (
          id text PRIMARY KEY,
          name text NOT NULL DEFAULT '',
          secret_hash text NOT NULL,
          created_at timestamptz NOT NULL DEFAULT now(),
          revoked_at timestamptz
        );
        CREATE TABLE apps (
          id text PRIMARY KEY,
          workspace_id text NOT NULL REFERENCES workspaces(id),
          name text NOT NULL,
          version integer NOT NULL,
          description text NOT NULL DEFAULT '',
          runtime jsonb NOT NULL,
          gpu_count integer NOT NULL,
          gpu_min_memory_bytes bigint NOT NULL,
          gpu_models jsonb NOT NULL,
          env jsonb NOT NULL,
          input_schema jsonb,
          input_schema_source text,
          timeout_ms bigint NOT NULL,
          created_at timestamptz NOT NULL DEFAULT now(),
          updated_at timestamptz NOT NULL DEFAULT now(),
          UNIQUE (workspace_id, name)
        );
        CREATE TABLE nodes (
          id text PRIMARY KEY,
          name text NOT NULL,
          state text NOT NULL,
          gpus jsonb NOT NULL,
          gpu_error text NOT NULL DEFAULT '',
          runtimes jsonb NOT NULL,
          max_concurrent_tasks integer NOT NULL,
          worker_version text NOT NULL DEFAULT '',
          warm_app_ids jsonb NOT NULL DEFAULT '[]',
          gateway_id text,
          connected_at timestamptz,
          last_heartbeat_at timestamptz,
          created_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE TABLE tasks (
          seq bigserial UNIQUE,
          id text PRIMARY KEY,
          workspace_id text NOT NULL REFERENCES workspaces(id),
          app_id text NOT NULL REFERENCES apps(id),
          app_version integer NOT NULL,
          state text NOT NULL,
          priority integer NOT NULL DEFAULT 0,
          input jsonb NOT NULL,
          output jsonb,
          error text NOT NULL DEFAULT '',
          progress jsonb,
          labels jsonb NOT NULL DEFAULT '{}',
          idempotency_key text,
          timeout_ms bigint NOT NULL,
          created_at timestamptz NOT NULL DEFAULT now(),
          assigned_at timestamptz,
          started_at timestamptz,
          ended_at timestamptz,
          attempt_count integer NOT NULL DEFAULT 0,
          current_attempt_id text,
          node_id text,
          gpu_indices jsonb NOT NULL DEFAULT '[]',
          cold_start_ms bigint NOT NULL DEFAULT 0,
          execution_ms bigint NOT NULL DEFAULT 0,
          gpu_ms bigint NOT NULL DEFAULT 0
        );
        CREATE UNIQUE INDEX tasks_idempotency ON tasks (workspace_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
        -- The queue: highest priority first, then first come first served.
        CREATE INDEX tasks_queued ON tasks (priority DESC, seq) WHERE state = 'QUEUED';
        CREATE INDEX tasks_by_workspace ON tasks (workspace_id, seq DESC);
        CREATE INDEX tasks_by_app ON tasks (app_id, seq DESC);
        CREATE SEQUENCE attempt_fencing_tokens;
        CREATE TABLE attempts (
          id text PRIMARY KEY,
          task_id text NOT NULL REFERENCES tasks(id),
          workspace_id text NOT NULL,
          app_id text NOT NULL,
          node_id text NOT NULL,
          fencing_token bigint NOT NULL,
          gpu_indices jsonb NOT NULL,
          state text NOT NULL,
          created_at timestamptz NOT NULL DEFAULT now(),
          started_at timestamptz,
          ended_at timestamptz,
          cold_start_ms bigint NOT NULL DEFAULT 0,
          worker_started_at_ms bigint,
          worker_ended_at_ms bigint,
          gpu_ms bigint NOT NULL DEFAULT 0,
          error text NOT NULL DEFAULT ''
        );
        CREATE INDEX attempts_by_task ON attempts (task_id);
        -- What holds each node's GPUs right now.
        CREATE INDEX attempts_active ON attempts (node_id) WHERE ended_at IS NULL;
        CREATE TABLE gpu_samples (
          node_id text NOT NULL,
          gpu_index integer NOT NULL,
          time timestamptz NOT NULL,
          utilization_percent real,
          memory_used_bytes bigint,
          memory_total_bytes bigint,
          temperature_celsius real,
          power_draw_watts real,
          power_limit_watts real,
          sm_clock_mhz integer,
          ecc_uncorrected_errors bigint
        );
        CREATE INDEX gpu_samples_by_gpu ON gpu_samples (node_id, gpu_index, time);
        CREATE INDEX gpu_samples_by_time ON gpu_samples (time);
        CREATE TABLE gpu_samples_minute (LIKE gpu_samples INCLUDING ALL);
      `,
      );
    },
  },
  "0002_retries_timeouts_reliability": {
    async up(db: Kysely<any>): Promise<void> {
      await runStatements(
        db,
        `
        ALTER TABLE apps ADD COLUMN max_attempts integer NOT NULL DEFAULT 3;
        ALTER TABLE apps ADD COLUMN queue_ttl_ms bigint NOT NULL DEFAULT 0;
        ALTER TABLE tasks ADD COLUMN max_attempts integer NOT NULL DEFAULT 3;
        -- A queued task past this ends EXPIRED.
        ALTER TABLE tasks ADD COLUMN expires_at timestamptz;
        -- A task re-queued after a retryable failure waits until then (backoff).
        ALTER TABLE tasks ADD COLUMN not_before timestamptz;
        ALTER TABLE nodes ADD COLUMN completed_attempts bigint NOT NULL DEFAULT 0;
        ALTER TABLE nodes ADD COLUMN lost_attempts bigint NOT NULL DEFAULT 0;
        -- When its stream closed; its attempts wait a short grace period for it to come back.
        ALTER TABLE nodes ADD COLUMN disconnected_at timestamptz;
        CREATE INDEX tasks_expiring ON tasks (expires_at) WHERE state = 'QUEUED' AND expires_at IS NOT NULL;
        CREATE INDEX attempts_running ON attempts (started_at) WHERE ended_at IS NULL;
      `,
      );
    },
  },
  "0003_operators": {
    async up(db: Kysely<any>): Promise<void> {
      // An operator workspace runs the network: its keys may drain nodes.
      await runStatements(db, "ALTER TABLE workspaces ADD COLUMN operator boolean NOT NULL DEFAULT false");
    },
  },
  "0004_replica_presence": {
    async up(db: Kysely<any>): Promise<void> {
      // Each control-plane replica says it is alive here; a node held by a replica that died is
      // not judged by its silence (nobody was listening) until its worker had time to reconnect.
      await runStatements(db, "CREATE TABLE control_planes (id text PRIMARY KEY, started_at timestamptz NOT NULL DEFAULT now(), last_seen_at timestamptz NOT NULL DEFAULT now())");
    },
  },
};

