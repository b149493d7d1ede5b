/** An attempt's hold on its GPUs: from being given them to its end (open while it runs). */
export interface AttemptSpan {
  readonly id: string;
  readonly node_id: string;
  readonly state: string;
  readonly created_at: Date;
  readonly ended_at: Date | null;
}

export interface TaskTimes {
  /** Time the task waited in the queue: before its first attempt and between attempts. */
  readonly queueMs: number;
  /** Attempts that held GPUs but bill nothing (LOST, RELEASED), and for how long. */
  readonly unbilled: Array<{ attemptId: string; nodeId: string; outcome: string; heldMs: bigint }>;
}

const UNBILLED = new Set(["LOST", "RELEASED"]);

/**
 * Splits a task's life into queue time and attempts: time an attempt held GPUs
 * is never queue time, even when the attempt was lost with its node.
 */
export function taskTimes(task: { created_at: Date; ended_at: Date | null }, attempts: readonly AttemptSpan[], now: Date): TaskTimes {
  const end = (task.ended_at ?? now).getTime();
  let cursor = task.created_at.getTime();
  let queueMs = 0;
  const unbilled: TaskTimes["unbilled"] = [];
  for (const a of [...attempts].sort((x, y) => x.created_at.getTime() - y.created_at.getTime())) {
    const from = a.created_at.getTime();
    const to = a.ended_at?.getTime() ?? end;
    queueMs += Math.max(0, from - cursor);
    cursor = Math.max(cursor, to);
    if (UNBILLED.has(a.state)) unbilled.push({ attemptId: a.id, nodeId: a.node_id, outcome: a.state, heldMs: BigInt(Math.max(0, to - from)) });
  }
  // Back in the queue after its last attempt (until it ends, or now).
  queueMs += Math.max(0, end - cursor);
  return { queueMs, unbilled };
}
