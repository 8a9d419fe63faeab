// What the server stored, read back with the CLI (`history --json`,
// `export --json`) and rebuilt with yjs in the test process, as paragraphs of
// the editor's XML fragment so they compare directly with what a page shows.

import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import * as Y from 'yjs';
import type { LogEntryJson } from '../../server/log-entry-json.js';
import { childEnv, cliPath } from './server.js';

const run = promisify(execFile);

/** The Yjs fragment the editor writes to (client-demo FRAGMENT_NAME). */
export const FRAGMENT_NAME = 'default';

/** One entry of `history --json`: the shape the server defines for the CLI and the API. */
export type LogEntry = LogEntryJson;

async function cli(args: string[]): Promise<unknown> {
  const { stdout } = await run(process.execPath, [cliPath, ...args], { env: childEnv() });
  return JSON.parse(stdout);
}

export async function history(dataFile: string, doc: string): Promise<LogEntry[]> {
  return await cli(['history', doc, '--json', '--data', dataFile]) as LogEntry[];
}

export async function exportedUpdate(dataFile: string, doc: string): Promise<Uint8Array> {
  const { update } = await cli(['export', doc, '--json', '--data', dataFile]) as { update: string };
  return Buffer.from(update, 'base64');
}

function textOf(node: Y.XmlElement | Y.XmlText | Y.XmlHook): string {
  if (node instanceof Y.XmlText) {
    return (node.toDelta() as Array<{ insert: unknown }>).map(({ insert }) => (typeof insert === 'string' ? insert : '')).join('');
  }
  if (node instanceof Y.XmlElement) return node.toArray().map(textOf).join('');
  return '';
}

/** The text of each top-level block (paragraph, heading, …) of the editor's fragment. */
export function paragraphsOf(doc: Y.Doc): string[] {
  return doc.getXmlFragment(FRAGMENT_NAME).toArray().map(textOf);
}

function paragraphsOfUpdates(updates: Uint8Array[]): string[] {
  const doc = new Y.Doc();
  for (const update of updates) Y.applyUpdate(doc, update);
  const paragraphs = paragraphsOf(doc);
  doc.destroy();
  return paragraphs;
}

/** The document rebuilt by replaying every log entry, oldest first. */
export async function paragraphsFromHistory(dataFile: string, doc: string): Promise<string[]> {
  const entries = await history(dataFile, doc);
  return paragraphsOfUpdates(entries.map((entry) => Buffer.from(entry.update, 'base64')));
}

/** The document as `export` gives it (latest snapshot plus the log after it). */
export async function paragraphsFromExport(dataFile: string, doc: string): Promise<string[]> {
  return paragraphsOfUpdates([await exportedUpdate(dataFile, doc)]);
}
