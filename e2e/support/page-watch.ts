// What a browser context does besides drawing: the WebSockets its pages open
// (and whether they closed) and the console errors and warnings they print.
// Attach it in openPeer's `prepare`, so it sees the page from its first request.

import type { BrowserContext, WebSocket } from '@playwright/test';

export interface PageWatch {
  /** Every WebSocket any page of the context opened, in order. */
  sockets: WebSocket[];
  /** Console errors and warnings, and uncaught exceptions, as "type: text". */
  problems: string[];
}

export function watchContext(context: BrowserContext): PageWatch {
  const watch: PageWatch = { sockets: [], problems: [] };
  context.on('page', (page) => {
    page.on('websocket', (socket) => watch.sockets.push(socket));
    page.on('console', (message) => {
      if (message.type() === 'error' || message.type() === 'warning') watch.problems.push(`${message.type()}: ${message.text()}`);
    });
    page.on('pageerror', (error) => watch.problems.push(`uncaught: ${error.message}`));
  });
  return watch;
}
