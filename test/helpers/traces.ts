// The real editing traces the repository carries in traces/ (see its README): each
// transaction applied to a Y.Text gives one Yjs update, and to a plain string
// gives the expected text, so history can be checked against an independent
// replay.

import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';
import * as Y from 'yjs';

export interface Trace {
  startContent: string;
  endContent: string;
  txns: Array<{ patches: Array<[number, number, string]> }>;
}

/** dist/test/helpers → the repository's traces/; PALIMPSEST_TRACES points elsewhere (e.g. a fuller collection). */
export const tracesDir = process.env.PALIMPSEST_TRACES ?? fileURLToPath(new URL('../../../traces', import.meta.url));

export function loadTrace(name: string): Trace {
  return JSON.parse(gunzipSync(readFileSync(`${tracesDir}/${name}.json.gz`)).toString('utf8')) as Trace;
}

/** The first `count` transactions as Yjs updates on Y.Text 'text', plus the plain-string text after each. */
export function traceUpdates(trace: Trace, count: number): { updates: Uint8Array[]; texts: string[] } {
  const doc = new Y.Doc();
  const ytext = doc.getText('text');
  const updates: Uint8Array[] = [];
  doc.on('update', (update: Uint8Array) => updates.push(update));
  const texts: string[] = [];
  let text = trace.startContent;
  for (const txn of trace.txns.slice(0, count)) {
    doc.transact(() => {
      for (const [pos, del, ins] of txn.patches) {
        if (del > 0) ytext.delete(pos, del);
        if (ins.length > 0) ytext.insert(pos, ins);
        text = text.slice(0, pos) + ins + text.slice(pos + del);
      }
    });
    texts.push(text);
  }
  doc.destroy();
  return { updates, texts };
}
