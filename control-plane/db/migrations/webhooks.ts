import { type Kysely, sql } from "kysely";
import type { Migration } from "kysely";
import { runStatements } from "./run-statements.js";

/**
 * Issue 6: webhooks. Deliveries are an outbox table filled by a trigger on
 * tasks, so every path that changes a task (batched finishes, the scheduler,
 * cancels, timeouts, lost nodes) enqueues its events in the same transaction
 * as the change, with no extra round trip, and none can forget to.
 */
export const webhookMigrations: Record<string, Migration> = {
  "0400_webhooks": {
    async up(db: Kysely<any>): Promise<void> {
      await runStatements(
        db,
        `
        CREATE TABLE webhooks (
          seq bigserial UNIQUE,
          id text PRIMARY KEY,
          workspace_id text NOT NULL REFERENCES workspaces(id),
          app_id text REFERENCES apps(id),
          task_id text,
          url text NOT NULL,
          events jsonb NOT NULL,
          secret text NOT NULL,
          created_at timestamptz NOT NULL DEFAULT now(),
          deleted_at timestamptz,
          CHECK ((app_id IS NULL) <> (task_id IS NULL))
        );
        CREATE INDEX webhooks_by_app ON webhooks (app_id) WHERE deleted_at IS NULL AND app_id IS NOT NULL;
        CREATE INDEX webhooks_by_task ON webhooks (task_id) WHERE deleted_at IS NULL AND task_id IS NOT NULL;
        CREATE INDEX webhooks_by_workspace ON webhooks (workspace_id, seq DESC);
        CREATE TABLE webhook_deliveries (
          seq bigserial UNIQUE,
          id text PRIMARY KEY DEFAULT ('whd_' || replace(gen_random_uuid()::text, '-', '')),
          webhook_id text NOT NULL REFERENCES webhooks(id),
          workspace_id text NOT NULL,
          task_id text NOT NULL,
          type text NOT NULL,
          snapshot jsonb NOT NULL,
          state text NOT NULL DEFAULT 'PENDING',
          attempt_count integer NOT NULL DEFAULT 0,
          next_attempt_at timestamptz NOT NULL DEFAULT now(),
          created_at timestamptz NOT NULL DEFAULT now(),
          delivered_at timestamptz,
          last_status_code integer NOT NULL DEFAULT 0,
          last_error text NOT NULL DEFAULT ''
        );
        CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE state = 'PENDING';
        -- Progress not yet sent is replaced by newer progress (see the trigger's ON CONFLICT).
        CREATE UNIQUE INDEX webhook_deliveries_unsent_progress ON webhook_deliveries (webhook_id, task_id)
          WHERE type = 'task.progress' AND state = 'PENDING' AND attempt_count = 0;
        CREATE INDEX webhook_deliveries_by_workspace ON webhook_deliveries (workspace_id, seq DESC);
        CREATE INDEX webhook_deliveries_by_task ON webhook_deliveries (task_id);
        CREATE TABLE webhook_attempts (
          delivery_id text NOT NULL REFERENCES webhook_deliveries(id),
          number integer NOT NULL,
          at timestamptz NOT NULL DEFAULT now(),
          status_code integer NOT NULL,
          error text NOT NULL,
          duration_ms integer NOT NULL,
          PRIMARY KEY (delivery_id, number)
        )`,
      );
      // A function body holds semicolons: one statement of its own.
      await sql
        .raw(
          `CREATE FUNCTION ngpu_enqueue_task_webhooks() RETURNS trigger LANGUAGE plpgsql AS $fn$
          DECLARE
            kind text;
          BEGIN
            IF TG_OP = 'INSERT' OR NEW.state IS DISTINCT FROM OLD.state THEN
              kind := CASE WHEN NEW.state IN ('SUCCEEDED', 'FAILED', 'CANCELLED', 'TIMED_OUT', 'EXPIRED')
                THEN 'task.completed' ELSE 'task.state_changed' END;
            ELSIF NEW.progress IS DISTINCT FROM OLD.progress AND jsonb_typeof(NEW.progress) = 'object' THEN
              kind := 'task.progress';
            ELSE
              RETURN NULL;
            END IF;
            -- The task as it is now, without its input (up to 1 MiB, and the caller has it);
            -- the output only where it is news.
            INSERT INTO webhook_deliveries (webhook_id, workspace_id, task_id, type, snapshot)
            SELECT w.id, NEW.workspace_id, NEW.id, kind,
              CASE WHEN kind = 'task.completed' THEN to_jsonb(NEW) - 'input' ELSE to_jsonb(NEW) - 'input' - 'output' END
            FROM webhooks w
            WHERE w.deleted_at IS NULL AND w.workspace_id = NEW.workspace_id
              AND (w.task_id = NEW.id OR w.app_id = NEW.app_id) AND w.events ? kind
            ON CONFLICT (webhook_id, task_id) WHERE type = 'task.progress' AND state = 'PENDING' AND attempt_count = 0
            DO UPDATE SET snapshot = EXCLUDED.snapshot, created_at = EXCLUDED.created_at;
            RETURN NULL;
          END
          $fn$`,
        )
        .execute(db);
      await runStatements(
        db,
        `
        CREATE TRIGGER tasks_webhooks_on_update AFTER UPDATE OF state, progress ON tasks
          FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state OR OLD.progress IS DISTINCT FROM NEW.progress)
          EXECUTE FUNCTION ngpu_enqueue_task_webhooks();
        -- Deferred to the commit, so a webhook given with the task (inserted after it, in the same
        -- transaction) hears about the task being queued.
        CREATE CONSTRAINT TRIGGER tasks_webhooks_on_insert AFTER INSERT ON tasks
          DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ngpu_enqueue_task_webhooks()`,
      );
    },
  },
  /**
   * Updates enqueue per statement, not per row: the gateway and the scheduler change hundreds of
   * tasks in one statement, and one set-based INSERT over the statement's changed rows costs less
   * than a function call per row (see `npm run bench -- webhooks`). Inserts keep the deferred
   * per-row trigger (a transition table cannot be deferred).
   */
  "0401_webhooks_per_statement": {
    async up(db: Kysely<any>): Promise<void> {
      await sql
        .raw(
          `CREATE FUNCTION ngpu_enqueue_task_webhooks_per_statement() RETURNS trigger LANGUAGE plpgsql AS $fn$
          BEGIN
            INSERT INTO webhook_deliveries (webhook_id, workspace_id, task_id, type, snapshot)
            SELECT w.id, n.workspace_id, n.id, k.kind,
              CASE WHEN k.kind = 'task.completed' THEN to_jsonb(n) - 'input' ELSE to_jsonb(n) - 'input' - 'output' END
            FROM changed_new n
            JOIN changed_old o ON o.id = n.id
            CROSS JOIN LATERAL (SELECT CASE
                WHEN n.state IS DISTINCT FROM o.state THEN
                  CASE WHEN n.state IN ('SUCCEEDED', 'FAILED', 'CANCELLED', 'TIMED_OUT', 'EXPIRED') THEN 'task.completed' ELSE 'task.state_changed' END
                WHEN n.progress IS DISTINCT FROM o.progress AND jsonb_typeof(n.progress) = 'object' THEN 'task.progress'
              END AS kind) k
            JOIN webhooks w ON w.deleted_at IS NULL AND w.workspace_id = n.workspace_id
              AND (w.task_id = n.id OR w.app_id = n.app_id) AND w.events ? k.kind
            WHERE k.kind IS NOT NULL
            ON CONFLICT (webhook_id, task_id) WHERE type = 'task.progress' AND state = 'PENDING' AND attempt_count = 0
            DO UPDATE SET snapshot = EXCLUDED.snapshot, created_at = EXCLUDED.created_at;
            RETURN NULL;
          END
          $fn$`,
        )
        .execute(db);
      await runStatements(
        db,
        `
        DROP TRIGGER tasks_webhooks_on_update ON tasks;
        CREATE TRIGGER tasks_webhooks_on_update AFTER UPDATE ON tasks
          REFERENCING OLD TABLE AS changed_old NEW TABLE AS changed_new
          FOR EACH STATEMENT EXECUTE FUNCTION ngpu_enqueue_task_webhooks_per_statement()`,
      );
    },
  },
};
