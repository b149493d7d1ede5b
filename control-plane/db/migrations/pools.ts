import type { Kysely, Migration } from "kysely";
import { runStatements } from "./run-statements.js";

/** Issue 5: elastic app pools (policy per app, pool membership, scaling decisions). */
export const poolMigrations: Record<string, Migration> = {
  "0200_pools": {
    async up(db: Kysely<any>): Promise<void> {
      await runStatements(
        db,
        `
        ALTER TABLE apps ADD COLUMN pool_policy jsonb;
        -- A node belongs to at most one app's pool at a time (the primary key).
        CREATE TABLE pool_members (
          node_id text PRIMARY KEY REFERENCES nodes(id),
          app_id text NOT NULL REFERENCES apps(id),
          state text NOT NULL,
          since timestamptz NOT NULL DEFAULT now(),
          last_busy_at timestamptz NOT NULL DEFAULT now(),
          warm_sent_at timestamptz NOT NULL DEFAULT now(),
          gpu_indices jsonb NOT NULL DEFAULT '[]',
          cold_start_ms bigint NOT NULL DEFAULT 0
        );
        CREATE INDEX pool_members_by_app ON pool_members (app_id);
        CREATE TABLE scaling_events (
          seq bigserial PRIMARY KEY,
          id text NOT NULL UNIQUE,
          app_id text NOT NULL REFERENCES apps(id),
          workspace_id text NOT NULL,
          kind text NOT NULL,
          from_nodes integer NOT NULL,
          to_nodes integer NOT NULL,
          node_ids jsonb NOT NULL DEFAULT '[]',
          reason text NOT NULL,
          cold_start_ms bigint NOT NULL DEFAULT 0,
          created_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX scaling_events_by_app ON scaling_events (app_id, seq DESC);
        -- What the autoscaler last wanted for each pool (shown in pool status).
        CREATE TABLE pool_targets (
          app_id text PRIMARY KEY REFERENCES apps(id),
          desired_nodes integer NOT NULL,
          updated_at timestamptz NOT NULL DEFAULT now()
        );
        -- Recent failure rate per app (the scale-up guard).
        CREATE INDEX attempts_ended_by_app ON attempts (app_id, ended_at) WHERE ended_at IS NOT NULL;
        -- The autoscaler counts each pooled app's waiting tasks every round.
        CREATE INDEX tasks_queued_by_app ON tasks (app_id, created_at) WHERE state = 'QUEUED';
        `,
      );
    },
  },
};
