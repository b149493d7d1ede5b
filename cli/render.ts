// Human-readable views of tasks, apps and nodes.
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import {
  NodeState,
  formatUsd,
  taskOutput,
  taskStateName,
  type App,
  type GpuRequirements,
  type JsonValue,
  type Node,
  type Progress,
  type Runtime,
  type Task,
} from "../sdk/index.js";
import {
  MISSING,
  formatAge,
  formatBytes,
  formatCelsius,
  formatDuration,
  formatPercent,
  formatTable,
  formatTime,
  formatWatts,
} from "./format.js";
import { summarizeDataUris } from "./output-files.js";
import { poolPolicyText } from "./render-pool.js";

function date(ts: Timestamp | undefined): Date | undefined {
  return ts === undefined ? undefined : timestampDate(ts);
}

function details(rows: readonly (readonly [string, string])[]): string {
  const shown = rows.filter(([, value]) => value !== "");
  const width = Math.max(...shown.map(([key]) => key.length)) + 1;
  // Continuation lines of a multi-line value line up under its first line.
  return shown.map(([key, value]) => `${`${key}:`.padEnd(width)} ${value.replaceAll("\n", `\n${" ".repeat(width + 1)}`)}`).join("\n");
}

function labels(map: Readonly<Record<string, string>>): string {
  return Object.entries(map)
    .map(([k, v]) => `${k}=${v}`)
    .join(", ");
}

/** "40% 4/10 denoising", "" when there is no progress yet. */
export function progressText(progress: Progress | undefined): string {
  if (progress === undefined) return "";
  const steps = progress.totalSteps > 0 ? ` ${progress.step}/${progress.totalSteps}` : "";
  return `${formatPercent(progress.percent)}${steps}${progress.message ? ` ${progress.message}` : ""}`;
}

/** An output for a terminal: a string as it is, anything else as indented JSON; data: URIs shortened. */
export function outputText(output: JsonValue): string {
  const shown = summarizeDataUris(output);
  return typeof shown === "string" ? shown : JSON.stringify(shown, null, 2);
}

export function renderTask(task: Task, now: Date): string {
  const created = date(task.createTime);
  const output = taskOutput(task);
  return details([
    ["id", task.id],
    ["app", task.appName ? `${task.appName} (${task.appId})` : task.appId],
    ["state", taskStateName(task.state)],
    ["waiting", task.queueReason],
    ["progress", progressText(task.progress)],
    ["error", task.error],
    ["created", created ? `${formatTime(created)} (${formatAge(created, now)})` : ""],
    ["started", task.startTime ? formatTime(date(task.startTime)) : ""],
    ["ended", task.endTime ? formatTime(date(task.endTime)) : ""],
    [
      "time",
      `queue ${formatDuration(task.queueMs)}, cold start ${formatDuration(task.coldStartMs)}, ` +
        `execution ${formatDuration(task.executionMs)}, GPU ${formatDuration(task.gpuMs)}`,
    ],
    [
      "attempts",
      task.attemptCount > 0
        ? `${task.attemptCount}${task.nodeId ? ` (last on ${task.nodeId}${task.gpuIndices.length ? `, GPUs ${task.gpuIndices.join(",")}` : ""})` : ""}`
        : "",
    ],
    ["priority", task.priority !== 0 ? String(task.priority) : ""],
    ["labels", labels(task.labels)],
    ["idempotency key", task.idempotencyKey],
    ["output", output === undefined ? "" : outputText(output)],
  ]);
}

/** How long the task ran, or has been running. */
function taskDuration(task: Task, now: Date): string {
  if (task.executionMs > 0n) return formatDuration(task.executionMs);
  const start = date(task.startTime);
  if (start === undefined) return MISSING;
  return formatDuration((date(task.endTime) ?? now).getTime() - start.getTime());
}

export function renderTaskTable(tasks: readonly Task[], now: Date): string {
  return formatTable(
    ["ID", "APP", "STATE", "PROGRESS", "CREATED", "DURATION", "NODE"],
    tasks.map((t) => [
      t.id,
      t.appName || t.appId,
      taskStateName(t.state),
      progressText(t.progress) || MISSING,
      formatAge(date(t.createTime), now),
      taskDuration(t, now),
      t.nodeId || MISSING,
    ]),
  );
}

/** Quotes an argv word for display when the shell would split or expand it. */
export function shellQuote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}

export function runtimeText(runtime: Runtime | undefined): string {
  switch (runtime?.kind.case) {
    case "process":
      return `process: ${runtime.kind.value.command.map(shellQuote).join(" ")}`;
    case "docker":
      return `docker: ${runtime.kind.value.image}${runtime.kind.value.port ? ` (port ${runtime.kind.value.port})` : ""}`;
    case "builtin":
      return `builtin: ${runtime.kind.value.name}`;
    default:
      return MISSING;
  }
}

export function gpuRequirementsText(gpu: GpuRequirements | undefined): string {
  if (gpu === undefined || gpu.count === 0) return "none (CPU)";
  const parts = [`${gpu.count} GPU${gpu.count > 1 ? "s" : ""}`];
  if (gpu.minMemoryBytes > 0n) parts.push(`≥ ${formatBytes(gpu.minMemoryBytes)} each`);
  if (gpu.allowedModels.length > 0) parts.push(`models: ${gpu.allowedModels.join(", ")}`);
  return parts.join(", ");
}

export function renderApp(app: App, now: Date): string {
  const updated = date(app.updateTime);
  return details([
    ["id", app.id],
    ["name", app.name],
    ["workspace", app.workspaceId],
    ["version", String(app.version)],
    ["published", app.public ? `yes: any workspace may call ${app.workspaceId}/${app.name} (or ${app.id})` : "no"],
    ["fee per call", app.public || app.callFeeNanoUsd > 0n ? `${formatUsd(app.callFeeNanoUsd)} USD (other workspaces, per successful call)` : ""],
    ["description", app.description],
    ["runtime", app.runtime ? runtimeText(app.runtime) : ""],
    ["gpu", gpuRequirementsText(app.gpu)],
    ["timeout", app.timeoutMs > 0n ? formatDuration(app.timeoutMs) : "platform default"],
    ["env", Object.keys(app.env).join(", ")],
    ["input schema", app.inputSchema ? JSON.stringify(app.inputSchema) : ""],
    ["pool", app.pool ? poolPolicyText(app.pool) : ""],
    ["updated", updated ? `${formatTime(updated)} (${formatAge(updated, now)})` : ""],
  ]);
}

export function renderAppTable(apps: readonly App[], now: Date): string {
  return formatTable(
    ["NAME", "ID", "VERSION", "RUNTIME", "GPU", "UPDATED"],
    apps.map((a) => [a.name, a.id, String(a.version), runtimeText(a.runtime), gpuRequirementsText(a.gpu), formatAge(date(a.updateTime), now)]),
  );
}

export function nodeStateName(state: NodeState): string {
  const name = NodeState[state] as string | undefined;
  return name === undefined ? `state_${state}` : name.toLowerCase();
}

/** "NVIDIA GeForce RTX 3090" → "RTX 3090": the vendor words add width, not information. */
export function shortModel(model: string): string {
  return model.replace(/^NVIDIA\s+/i, "").replace(/^GeForce\s+/i, "") || "unknown";
}

/** "2× RTX 3090, 1× A100" */
export function gpuSummary(node: Node): string {
  if (node.gpus.length === 0) return "none";
  const counts = new Map<string, number>();
  for (const gpu of node.gpus) counts.set(shortModel(gpu.model), (counts.get(shortModel(gpu.model)) ?? 0) + 1);
  return [...counts].map(([model, n]) => `${n}× ${model}`).join(", ");
}

/** Whole-node readings: mean utilisation, summed VRAM and power, hottest GPU. */
export function nodeReadings(node: Node): { utilization: string; vram: string; temperature: string; power: string } {
  const t = node.telemetry;
  const defined = <T>(values: (T | undefined)[]): T[] => values.filter((v): v is T => v !== undefined);
  const util = defined(t.map((g) => g.utilizationPercent));
  const used = defined(t.map((g) => g.memoryUsedBytes));
  const totals = defined(t.map((g) => g.memoryTotalBytes));
  const total = totals.length > 0 ? totals.reduce((a, b) => a + b, 0n) : node.gpus.reduce((a, g) => a + g.memoryTotalBytes, 0n);
  const temps = defined(t.map((g) => g.temperatureCelsius));
  const watts = defined(t.map((g) => g.powerDrawWatts));
  return {
    utilization: util.length ? formatPercent(util.reduce((a, b) => a + b, 0) / util.length) : MISSING,
    vram: used.length || total > 0n ? `${used.length ? formatBytes(used.reduce((a, b) => a + b, 0n)) : MISSING} / ${total > 0n ? formatBytes(total) : MISSING}` : MISSING,
    temperature: temps.length ? formatCelsius(Math.max(...temps)) : MISSING,
    power: watts.length ? formatWatts(watts.reduce((a, b) => a + b, 0)) : MISSING,
  };
}

export function renderNodeTable(nodes: readonly Node[]): string {
  const rows = nodes.map((n) => {
    const r = nodeReadings(n);
    return [n.id, n.name, nodeStateName(n.state), gpuSummary(n), r.utilization, r.vram, r.temperature, r.power, String(n.runningTasks), n.gpuError];
  });
  const header = ["ID", "NAME", "STATE", "GPUS", "UTIL", "VRAM", "TEMP", "POWER", "TASKS", "GPU ERROR"];
  // The error column only when some node has one: it is long and usually empty.
  return rows.some((row) => row[9] !== "") ? formatTable(header, rows) : formatTable(header.slice(0, 9), rows.map((row) => row.slice(0, 9)));
}

export function renderNode(node: Node, now: Date): string {
  const heartbeat = date(node.lastHeartbeatTime);
  const head = details([
    ["id", node.id],
    ["name", node.name],
    ["state", nodeStateName(node.state)],
    ["gpu error", node.gpuError],
    ["worker", node.workerVersion],
    ["runtimes", node.runtimes.join(", ")],
    ["tasks", `${node.runningTasks} running${node.maxConcurrentTasks ? ` (max ${node.maxConcurrentTasks})` : ""}`],
    ["warm apps", node.warmAppIds.join(", ")],
    ["reliability", `${(node.reliability * 100).toFixed(0)}% (${node.completedAttempts} completed, ${node.lostAttempts} lost)`],
    ["connected", node.connectTime ? formatTime(date(node.connectTime)) : ""],
    ["heartbeat", heartbeat ? formatAge(heartbeat, now) : ""],
  ]);
  if (node.gpus.length === 0) return head;
  const free = new Set(node.freeGpuIndices);
  const gpus = formatTable(
    ["GPU", "MODEL", "UTIL", "VRAM", "TEMP", "POWER", "ECC (corr/uncorr)", "STATE"],
    node.gpus.map((gpu) => {
      const t = node.telemetry.find((x) => x.index === gpu.index);
      const total = t?.memoryTotalBytes ?? gpu.memoryTotalBytes;
      const ecc =
        t?.eccCorrectedErrors === undefined && t?.eccUncorrectedErrors === undefined
          ? MISSING
          : `${t.eccCorrectedErrors ?? MISSING}/${t.eccUncorrectedErrors ?? MISSING}`;
      return [
        String(gpu.index),
        `${shortModel(gpu.model)}${gpu.simulated ? " (simulated)" : ""}`,
        formatPercent(t?.utilizationPercent),
        `${formatBytes(t?.memoryUsedBytes)} / ${formatBytes(total)}`,
        formatCelsius(t?.temperatureCelsius),
        t?.powerLimitWatts !== undefined ? `${formatWatts(t.powerDrawWatts)} / ${formatWatts(t.powerLimitWatts)}` : formatWatts(t?.powerDrawWatts),
        ecc,
        free.has(gpu.index) ? "free" : "busy",
      ];
    }),
  );
  return `${head}\n\n${gpus}`;
}
