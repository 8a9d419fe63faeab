// The thread the content conversions (content-formats.ts) run on, so that a
// large body never holds the server's event loop. content-api.ts starts it on
// the first content request and sends it one job at a time; each job is
// answered by one message with the same id. Everything crossing over is plain
// data (Yjs updates, strings, ProseMirror JSON).

import { parentPort } from 'node:worker_threads';
import type { JSONContent } from '@tiptap/core';
import { ContentError, contentUpdate, parseContent, renderField, type ContentFormat } from './content-formats.js';

export type ContentJob =
  /** GET: a field of a document state in a format. */
  | { op: 'render'; state: Uint8Array; field: string; format: ContentFormat }
  /** POST, before the document is touched: the body as checked ProseMirror JSON. */
  | { op: 'parse'; body: string; format: Exclude<ContentFormat, 'text'> }
  /** POST: the Yjs update that writes `content` into the field of the live document's state. */
  | { op: 'update'; state: Uint8Array; field: string; content: JSONContent; mode: 'replace' | 'append' };

export type ContentJobAnswer =
  | { id: number; ok: true; value: unknown }
  /** `code` is set for a ContentError (the caller's input), absent for a failure of the server's own. */
  | { id: number; ok: false; code?: ContentError['code']; message: string };

function run(job: ContentJob): unknown {
  switch (job.op) {
    case 'render': return renderField(job.state, job.field, job.format);
    case 'parse': return parseContent(job.body, job.format);
    case 'update': return contentUpdate(job.state, job.field, job.content, job.mode);
  }
}

const port = parentPort;
if (port !== null) {
  port.on('message', ({ id, job }: { id: number; job: ContentJob }) => {
    let answer: ContentJobAnswer;
    try {
      answer = { id, ok: true, value: run(job) };
    } catch (error) {
      answer = error instanceof ContentError
        ? { id, ok: false, code: error.code, message: error.message }
        : { id, ok: false, message: (error as Error).stack ?? String(error) };
    }
    port.postMessage(answer);
  });
  // Loading the packages takes a while; the caller starts its deadline only from here.
  port.postMessage({ ready: true });
}
