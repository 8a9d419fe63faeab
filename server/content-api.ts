// Writing to a document over HTTP: POST /api/documents/{doc}/updates takes a
// Yjs update (application/octet-stream), logs it with the caller's user,
// applies it to the live document (connected editors see it at once, other
// instances through Redis or catch-up) and answers { doc, seq } once it is
// committed. A malformed update is refused before anything is logged.

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Hocuspocus } from '@hocuspocus/server';
import type { Logger } from 'pino';
import * as Y from 'yjs';
import { checkUpdate, MalformedUpdateError, type EventStore } from '../persistence/index.js';
import { ApiError, sendJson, type ContentRoutes } from './api.js';

export interface ContentApiOptions {
  store: EventStore;
  hocuspocus: Hocuspocus;
  instanceId: string;
  logger: Logger;
  /** Largest update accepted, as for WebSocket frames (--max-message-bytes). */
  maxUpdateBytes: number;
}

export function createContentApi(options: ContentApiOptions): ContentRoutes {
  const { store, hocuspocus, logger } = options;
  return {
    async postUpdate(request: IncomingMessage, response: ServerResponse, doc: string, user: string | null): Promise<void> {
      const type = (request.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
      if (type !== 'application/octet-stream') {
        throw new ApiError(415, 'UNSUPPORTED_MEDIA_TYPE', `send the Yjs update as Content-Type: application/octet-stream (got "${type || 'none'}")`);
      }
      const update = await readBody(request, options.maxUpdateBytes);
      try {
        // The same check as for WebSocket updates: nothing Yjs cannot replay reaches the log or the live document.
        checkUpdate(update);
      } catch (error) {
        if (!(error instanceof MalformedUpdateError)) throw error;
        throw new ApiError(400, 'MALFORMED_UPDATE', `the body is not a Yjs update (v1) that can be applied: ${error.message}`);
      }
      let result;
      try {
        result = await store.append(doc, update, { instanceId: options.instanceId, user });
      } catch (error) {
        if (error instanceof MalformedUpdateError) throw new ApiError(400, 'MALFORMED_UPDATE', `the update cannot be applied: ${error.message}`);
        throw error;
      }
      // Logged first, with the caller's user; the live document's own append of it then adds nothing.
      const connection = await hocuspocus.openDirectConnection(doc, {});
      await connection.transact((document) => Y.applyUpdate(document, update));
      await connection.disconnect();
      const seq = result.seq ?? (await store.info(doc))?.seq ?? 0;
      logger.info({ doc, seq, size: result.size, user, via: 'api' }, 'update posted');
      sendJson(response, 200, { doc, seq });
    },
  };
}

async function readBody(request: IncomingMessage, limit: number): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new ApiError(413, 'BODY_TOO_LARGE', `updates are limited to ${limit} bytes (--max-message-bytes)`);
    chunks.push(chunk as Buffer);
  }
  return new Uint8Array(Buffer.concat(chunks));
}
