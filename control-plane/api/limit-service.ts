import type { ServiceImpl } from "@connectrpc/connect";
import { LimitService, type WorkspaceLimits as LimitsProto } from "../../gen/ngpu/v1/limits_pb.js";
import type { Db } from "../db/database.js";
import { getLimits, monthSpendNanoUsd, setLimits, unfinishedTasks, type WorkspaceLimits } from "../db/limits.js";
import { invalidArgument } from "../errors.js";
import { type Authenticate, requireFull, requireNotWidget } from "./auth.js";

export interface LimitServiceDeps {
  readonly db: Db;
  readonly authenticate: Authenticate;
}

/** Largest monthly cap: 1,000,000,000 USD (below 2^53 nano-USD). */
const MAX_MONTHLY_CAP_NANO_USD = 10n ** 18n;

function toProto(l: WorkspaceLimits) {
  return { maxConcurrentTasks: l.maxConcurrentTasks, maxSubmitsPerMinute: l.maxSubmitsPerMinute, monthlySpendCapNanoUsd: BigInt(l.monthlySpendCapNanoUsd) };
}

function fromProto(l: LimitsProto | undefined): WorkspaceLimits {
  if (!l) throw invalidArgument("limits", "is required");
  if (l.maxConcurrentTasks > 1_000_000) throw invalidArgument("limits.max_concurrent_tasks", "must be at most 1000000 (0: no limit)");
  if (l.maxSubmitsPerMinute > 1_000_000) throw invalidArgument("limits.max_submits_per_minute", "must be at most 1000000 (0: no limit)");
  if (l.monthlySpendCapNanoUsd < 0n || l.monthlySpendCapNanoUsd > MAX_MONTHLY_CAP_NANO_USD) {
    throw invalidArgument("limits.monthly_spend_cap_nano_usd", `must be 0 (no cap) to ${MAX_MONTHLY_CAP_NANO_USD}`);
  }
  return { maxConcurrentTasks: l.maxConcurrentTasks, maxSubmitsPerMinute: l.maxSubmitsPerMinute, monthlySpendCapNanoUsd: Number(l.monthlySpendCapNanoUsd) };
}

export function createLimitService(deps: LimitServiceDeps): ServiceImpl<typeof LimitService> {
  const { db, authenticate } = deps;
  return {
    async getLimits(_req, ctx) {
      const principal = await authenticate(ctx);
      requireNotWidget(principal, "reading the workspace's limits");
      const [limits, spent, unfinished] = await Promise.all([
        getLimits(db, principal.workspaceId),
        monthSpendNanoUsd(db, principal.workspaceId),
        unfinishedTasks(db, principal.workspaceId),
      ]);
      return { limits: toProto(limits), monthSpendNanoUsd: BigInt(spent), unfinishedTasks: unfinished };
    },
    async setLimits(req, ctx) {
      const principal = await authenticate(ctx);
      requireFull(principal, "changing the workspace's limits");
      const limits = fromProto(req.limits);
      await setLimits(db, principal.workspaceId, limits);
      return { limits: toProto(limits) };
    },
  };
}
