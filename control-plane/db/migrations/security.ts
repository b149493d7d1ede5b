import { type Kysely, type Migration, sql } from "kysely";
import { runStatements } from "./run-statements.js";

/** Sets the app ids of keys that name apps but have no ids yet (keys made before apps were bound by id). */
export async function resolveKeyAppIds(db: Kysely<any>): Promise<void> {
  await sql`UPDATE api_keys k SET app_ids = COALESCE((SELECT jsonb_agg(a.id ORDER BY a.name) FROM apps a WHERE a.workspace_id = k.workspace_id AND k.app_names ? a.name), '[]')
    WHERE jsonb_array_length(k.app_names) > 0 AND jsonb_array_length(k.app_ids) = 0`.execute(db);
}

/** Issue 7: key scopes and expiry, single-use enrollment tokens, node keys and revocation. */
export const securityMigrations: Record<string, Migration> = {
  "0300_security_identity": {
    async up(db: Kysely<any>): Promise<void> {
      await runStatements(
        db,
        `
        ALTER TABLE api_keys ADD COLUMN scope text NOT NULL DEFAULT 'FULL';
        ALTER TABLE api_keys ADD COLUMN app_names jsonb NOT NULL DEFAULT '[]';
        ALTER TABLE api_keys ADD COLUMN expires_at timestamptz;
        CREATE INDEX api_keys_workspace ON api_keys (workspace_id, created_at);
        ALTER TABLE enrollment_tokens ADD COLUMN expires_at timestamptz;
        ALTER TABLE enrollment_tokens ADD COLUMN max_uses integer NOT NULL DEFAULT 1;
        ALTER TABLE enrollment_tokens ADD COLUMN uses integer NOT NULL DEFAULT 0;
        ALTER TABLE nodes ADD COLUMN public_key text;
        ALTER TABLE nodes ADD COLUMN revoked_at timestamptz;
        ALTER TABLE nodes ADD COLUMN revoke_reason text NOT NULL DEFAULT ''
        `,
      );
    },
  },
  "0301_security_limits": {
    async up(db: Kysely<any>): Promise<void> {
      await runStatements(
        db,
        `
        ALTER TABLE workspaces ADD COLUMN max_concurrent_tasks integer NOT NULL DEFAULT 0;
        ALTER TABLE workspaces ADD COLUMN max_submits_per_minute integer NOT NULL DEFAULT 0;
        ALTER TABLE workspaces ADD COLUMN monthly_spend_cap_nano_usd bigint NOT NULL DEFAULT 0;
        ALTER TABLE tasks ADD COLUMN max_cost_nano_usd bigint;
        CREATE INDEX tasks_unfinished_by_workspace ON tasks (workspace_id) WHERE state IN ('QUEUED', 'ASSIGNED', 'STARTING', 'RUNNING');
        CREATE INDEX tasks_by_workspace_created ON tasks (workspace_id, created_at)
        `,
      );
    },
  },
  "0302_security_receipts": {
    async up(db: Kysely<any>): Promise<void> {
      await runStatements(
        db,
        `
        -- What the worker measured and signed for an attempt (receipts carry it).
        CREATE TABLE attempt_claims (
          attempt_id text PRIMARY KEY,
          claim jsonb NOT NULL,
          signature text NOT NULL,
          node_public_key text NOT NULL
        );
        -- The control plane's receipt-signing keys, shared by every replica.
        CREATE TABLE receipt_keys (
          id text PRIMARY KEY,
          public_key text NOT NULL,
          private_key_pem text NOT NULL,
          created_at timestamptz NOT NULL DEFAULT now()
        );
        -- One receipt per usage record, chained per workspace.
        CREATE TABLE usage_receipts (
          workspace_id text NOT NULL,
          seq bigint NOT NULL,
          attempt_id text NOT NULL UNIQUE,
          body text NOT NULL,
          hash text NOT NULL,
          signature text NOT NULL,
          key_id text NOT NULL,
          created_at timestamptz NOT NULL DEFAULT now(),
          PRIMARY KEY (workspace_id, seq)
        );
        -- Usage records waiting for their receipt, filled as records are written (the writer pops them).
        CREATE TABLE receipt_queue (
          attempt_id text PRIMARY KEY,
          queued_at timestamptz NOT NULL DEFAULT clock_timestamp()
        );
        -- On one line: statements are split at semicolons that end a line.
        CREATE FUNCTION queue_usage_receipt() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO receipt_queue (attempt_id) VALUES (NEW.attempt_id) ON CONFLICT DO NOTHING; RETURN NULL; END $$;
        CREATE TRIGGER usage_records_queue_receipt AFTER INSERT ON usage_records FOR EACH ROW EXECUTE FUNCTION queue_usage_receipt();
        INSERT INTO receipt_queue (attempt_id) SELECT attempt_id FROM usage_records
        `,
      );
    },
  },
  "0303_security_task_call_fee": {
    async up(db: Kysely<any>): Promise<void> {
      await runStatements(
        db,
        `
        -- The per-call fee in force when the task was submitted (0 for the author's own calls): what a
        -- success is charged, whatever the author sets later, and what the task's spend cap must cover.
        ALTER TABLE tasks ADD COLUMN call_fee_nano_usd bigint NOT NULL DEFAULT 0 CHECK (call_fee_nano_usd >= 0);
        UPDATE tasks SET call_fee_nano_usd = a.call_fee_nano_usd FROM apps a
          WHERE a.id = tasks.app_id AND a.workspace_id <> tasks.workspace_id AND a.call_fee_nano_usd > 0
            AND tasks.state IN ('QUEUED', 'ASSIGNED', 'STARTING', 'RUNNING')
        `,
      );
    },
  },
  "0304_security_key_app_ids": {
    async up(db: Kysely<any>): Promise<void> {
      // Keys named apps by name, which matched any workspace's app of that name. Existing keys keep
      // the apps of their own workspace that have those names now; a name with no app there is dropped.
      await sql`ALTER TABLE api_keys ADD COLUMN app_ids jsonb NOT NULL DEFAULT '[]'`.execute(db);
      await resolveKeyAppIds(db);
    },
  },
};
