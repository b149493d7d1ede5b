import type { Kysely, Migration } from "kysely";
import { runStatements } from "./run-statements.js";

/** Issue 4: prices, one usage record per attempt, and rollups kept as usage is written. */
export const meteringMigrations: Record<string, Migration> = {
  "0100_metering": {
    async up(db: Kysely<any>): Promise<void> {
      await runStatements(
        db,
        `
        -- The price book: a new row for a model changes its price from effective_from on; past usage
        -- keeps the price it was recorded with.
        CREATE TABLE gpu_prices (
          gpu_model text NOT NULL,
          effective_from timestamptz NOT NULL,
          nano_usd_per_gpu_second bigint NOT NULL CHECK (nano_usd_per_gpu_second >= 0),
          created_at timestamptz NOT NULL DEFAULT now(),
          PRIMARY KEY (gpu_model, effective_from)
        );
        CREATE INDEX gpu_prices_lookup ON gpu_prices (lower(gpu_model), effective_from DESC);
        -- The brief's figure: an RTX 3090 24 GB at 0.000366 USD per second.
        INSERT INTO gpu_prices (gpu_model, effective_from, nano_usd_per_gpu_second)
          VALUES ('NVIDIA GeForce RTX 3090', '2000-01-01T00:00:00Z', 366000);
        -- Network-wide billing settings (one row): the providers' share of what callers pay for GPU time.
        CREATE TABLE billing_settings (
          id boolean PRIMARY KEY DEFAULT true CHECK (id),
          provider_share_basis_points integer NOT NULL DEFAULT 8000 CHECK (provider_share_basis_points BETWEEN 0 AND 10000),
          updated_at timestamptz NOT NULL DEFAULT now()
        );
        INSERT INTO billing_settings (id) VALUES (true);
        -- A published app may be called by any workspace; the caller pays its usage plus the fee,
        -- and the fee is credited to the app's author.
        ALTER TABLE apps ADD COLUMN public boolean NOT NULL DEFAULT false;
        ALTER TABLE apps ADD COLUMN call_fee_nano_usd bigint NOT NULL DEFAULT 0 CHECK (call_fee_nano_usd >= 0);
        -- Who is paid for a node's GPU time; NULL: the network's operator.
        ALTER TABLE enrollment_tokens ADD COLUMN provider_workspace_id text REFERENCES workspaces(id);
        ALTER TABLE nodes ADD COLUMN provider_workspace_id text;
        -- One row per ended attempt, written in the transaction that ends it.
        CREATE TABLE usage_records (
          attempt_id text PRIMARY KEY,
          task_id text NOT NULL,
          workspace_id text NOT NULL,
          app_id text NOT NULL,
          app_workspace_id text NOT NULL,
          node_id text NOT NULL,
          provider_workspace_id text,
          gpu_model text NOT NULL,
          gpu_count integer NOT NULL,
          outcome text NOT NULL,
          started_at_ms bigint,
          ended_at_ms bigint NOT NULL,
          worker_execution_ms bigint,
          control_plane_execution_ms bigint,
          disagreement_ms bigint,
          execution_ms bigint NOT NULL,
          gpu_ms bigint NOT NULL,
          price_nano_usd_per_gpu_second bigint NOT NULL,
          cost_nano_usd bigint NOT NULL,
          fee_nano_usd bigint NOT NULL,
          provider_share_basis_points integer NOT NULL,
          provider_nano_usd bigint NOT NULL,
          recorded_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX usage_records_by_workspace ON usage_records (workspace_id, ended_at_ms, attempt_id);
        CREATE INDEX usage_records_by_task ON usage_records (task_id);
        -- Sums per 15-minute UTC bucket, upserted with the records: summaries read these, never the
        -- records. 15 minutes divides every UTC offset in use, so local days and hours are whole buckets.
        CREATE TABLE usage_rollups (
          workspace_id text NOT NULL,
          bucket timestamptz NOT NULL,
          app_id text NOT NULL,
          gpu_model text NOT NULL,
          node_id text NOT NULL,
          outcome text NOT NULL,
          app_workspace_id text NOT NULL,
          provider_workspace_id text,
          attempts bigint NOT NULL,
          gpu_ms bigint NOT NULL,
          cost_nano_usd bigint NOT NULL,
          fee_nano_usd bigint NOT NULL,
          provider_nano_usd bigint NOT NULL,
          PRIMARY KEY (workspace_id, bucket, app_id, gpu_model, node_id, outcome)
        );
        CREATE INDEX usage_rollups_by_provider ON usage_rollups (provider_workspace_id, bucket);
        CREATE INDEX usage_rollups_by_author ON usage_rollups (app_workspace_id, bucket);
        -- Tasks submitted per bucket. A submission adds one to the row of its connection's shard, so
        -- concurrent submissions do not queue on one row lock.
        CREATE TABLE task_submissions (
          workspace_id text NOT NULL,
          bucket timestamptz NOT NULL,
          app_id text NOT NULL,
          shard smallint NOT NULL,
          submitted bigint NOT NULL,
          PRIMARY KEY (workspace_id, bucket, app_id, shard)
        );
      `,
      );
    },
  },
  "0101_usage_rollups_by_app": {
    async up(db: Kysely<any>): Promise<void> {
      // The same sums per app only (no GPU model, node or outcome key; outcomes as counts): what
      // most summaries ask (totals, per app) reads one row per app per bucket.
      await runStatements(
        db,
        `
        CREATE TABLE usage_rollups_by_app (
          workspace_id text NOT NULL,
          bucket timestamptz NOT NULL,
          app_id text NOT NULL,
          attempts bigint NOT NULL,
          succeeded bigint NOT NULL,
          failed bigint NOT NULL,
          cancelled bigint NOT NULL,
          timed_out bigint NOT NULL,
          lost bigint NOT NULL,
          released bigint NOT NULL,
          gpu_ms bigint NOT NULL,
          cost_nano_usd bigint NOT NULL,
          fee_nano_usd bigint NOT NULL,
          provider_nano_usd bigint NOT NULL,
          PRIMARY KEY (workspace_id, bucket, app_id)
        );
        INSERT INTO usage_rollups_by_app
          SELECT workspace_id, bucket, app_id, sum(attempts),
            COALESCE(sum(attempts) FILTER (WHERE outcome = 'SUCCEEDED'), 0), COALESCE(sum(attempts) FILTER (WHERE outcome = 'FAILED'), 0),
            COALESCE(sum(attempts) FILTER (WHERE outcome = 'CANCELLED'), 0), COALESCE(sum(attempts) FILTER (WHERE outcome = 'TIMED_OUT'), 0),
            COALESCE(sum(attempts) FILTER (WHERE outcome = 'LOST'), 0), COALESCE(sum(attempts) FILTER (WHERE outcome = 'RELEASED'), 0),
            sum(gpu_ms), sum(cost_nano_usd), sum(fee_nano_usd), sum(provider_nano_usd)
          FROM usage_rollups GROUP BY 1, 2, 3;
      `,
      );
    },
  },
};
