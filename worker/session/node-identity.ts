import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/**
 * The node id the control plane gave this worker, kept in its data folder so a
 * restarted worker comes back as the same node.
 */
export interface NodeIdentity {
  nodeId(): string;
  save(nodeId: string): void;
}

export function openNodeIdentity(dataDir: string): NodeIdentity {
  const file = join(dataDir, "node.json");
  let current = "";
  try {
    const parsed = JSON.parse(readFileSync(file, "utf8")) as { nodeId?: unknown };
    if (typeof parsed.nodeId === "string") current = parsed.nodeId;
  } catch {
    // First start, or an unreadable file: join as a new node.
  }
  return {
    nodeId: () => current,
    save(nodeId) {
      if (nodeId === current) return;
      current = nodeId;
      mkdirSync(dataDir, { recursive: true, mode: 0o700 });
      // Write then rename, so a crash never leaves half a file.
      writeFileSync(`${file}.tmp`, JSON.stringify({ nodeId }) + "\n", { mode: 0o600 });
      renameSync(`${file}.tmp`, file);
    },
  };
}
