// The JSON shape of one log entry, shared by `palimpsest history --json` and
// GET /api/documents/{doc}/history. Part of the outside contract.

import type { LogEntry } from '../persistence/index.js';

export interface LogEntryJson {
  seq: number;
  receivedAt: string;
  instanceId: string;
  user: string | null;
  /** The name the writing connection announced; null when none. */
  displayName: string | null;
  size: number;
  /** Base64 of the logged Yjs update. */
  update: string;
}

export function logEntryToJson(entry: LogEntry): LogEntryJson {
  return {
    seq: entry.seq,
    receivedAt: entry.receivedAt.toISOString(),
    instanceId: entry.instanceId,
    user: entry.user,
    displayName: entry.displayName,
    size: entry.size,
    update: Buffer.from(entry.update).toString('base64'),
  };
}
