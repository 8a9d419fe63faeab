// Small helpers over the editor's data-testid hooks (client-demo/README.md),
// the same on the demo page and on pages that embed the library.

import { expect, type Page } from '@playwright/test';

/** The demo page for `doc` as `user`; `socket` sends the WebSocket elsewhere (a proxy). */
export function demoUrl(server: { http: string }, doc: string, user: string, socket?: string): string {
  const url = new URL('/', server.http);
  url.searchParams.set('doc', doc);
  url.searchParams.set('user', user);
  if (socket !== undefined) url.searchParams.set('server', socket);
  return url.href;
}

export const editorOf = (page: Page) => page.getByTestId('editor');
export const statusOf = (page: Page) => page.getByTestId('connection-status');
export const unsyncedOf = (page: Page) => page.getByTestId('unsynced-count');

/** Puts the caret at the very end of the document and types `text` key by key. */
export async function typeAtEnd(page: Page, text: string, delay = 15): Promise<void> {
  await editorOf(page).click();
  await page.keyboard.press('ControlOrMeta+End');
  await page.keyboard.type(text, { delay });
}

/** The text of each top-level block, as shown (comparable with server-log `paragraphsOf`). */
export async function paragraphs(page: Page): Promise<string[]> {
  return await editorOf(page).locator(':scope > *').allTextContents();
}

export async function expectConnected(page: Page): Promise<void> {
  await expect(statusOf(page)).toHaveAttribute('data-state', 'connected');
  await expect(statusOf(page)).toHaveText('connected');
}

/** Connected, and the server has acknowledged (durably logged) everything this page typed. */
export async function expectSettled(page: Page, timeout?: number): Promise<void> {
  await expect(statusOf(page)).toHaveAttribute('data-state', 'connected', { timeout });
  await expect(unsyncedOf(page)).toHaveText('0', { timeout });
}

/** Waits until every page is settled and all show the same blocks; returns them. */
export async function expectConverged(pages: Page[], timeout?: number): Promise<string[]> {
  for (const page of pages) await expectSettled(page, timeout);
  let agreed: string[] = [];
  await expect.poll(async () => {
    const shown = await Promise.all(pages.map(paragraphs));
    agreed = shown[0]!;
    // One distinct version means they agree; on failure the versions are printed.
    return [...new Set(shown.map((blocks) => JSON.stringify(blocks)))];
  }, { message: 'every peer shows the same text', timeout }).toHaveLength(1);
  return agreed;
}

/** Waits until `page` lists `names` (and only them) as present. */
export async function expectPresence(page: Page, names: string[]): Promise<void> {
  await expect.poll(async () => (await page.getByTestId('presence-user').evaluateAll(
    (items) => items.map((item) => item.getAttribute('data-name')),
  )).sort(), { message: 'the people present' }).toEqual([...names].sort());
}

/** True when `text` can be read out of `whole` in order, with other characters in between. */
export function isSubsequence(text: string, whole: string): boolean {
  let at = 0;
  for (const char of whole) if (char === text[at]) at += 1;
  return at === text.length;
}
