import type { Kysely, Migration } from "kysely";
import { runStatements } from "./run-statements.js";

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
};
