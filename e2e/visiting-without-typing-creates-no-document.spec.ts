// Regression: every visit to "/" without ?doc= invented a name, connected, and
// so left a document on the server (listed by GET /api/documents forever),
// even when nobody typed a character. A new document now reaches the server
// with its first edit, or when its link is copied to be shared.

import { expect, test } from './fixtures.js';
import { editorOf, expectConverged, expectPresence, expectSettled, statusOf, typeAtEnd } from './support/editor.js';
import { watchContext, type PageWatch } from './support/page-watch.js';
import type { ServerProcess } from './support/server.js';
import { paragraphsFromHistory } from './support/server-log.js';

async function documentsOn(server: ServerProcess): Promise<string[]> {
  const response = await fetch(`${server.http}/api/documents`);
  expect(response.status).toBe(200);
  return ((await response.json()) as { documents: string[] }).documents;
}

/** A Prometheus sample from /metrics, summed over its labels. */
async function metric(server: ServerProcess, name: string): Promise<number> {
  const text = await (await fetch(`${server.http}/metrics`)).text();
  return text.split('\n')
    .filter((line) => line.startsWith(`${name} `) || line.startsWith(`${name}{`))
    .reduce((sum, line) => sum + Number(line.slice(line.lastIndexOf(' ') + 1)), 0);
}

/** The document the page put into its address bar. */
function invented(pageUrl: string): string {
  const name = new URL(pageUrl).searchParams.get('doc');
  expect(name, `a ?doc= in ${pageUrl}`).toMatch(/^note-[a-z0-9]+$/);
  return name!;
}

test('visiting "/" and leaving without typing, even after a reload, leaves no document on the server', async ({ server, openPeer }) => {
  let watch: PageWatch | undefined;
  const page = await openPeer(`${server.http}/`, async (context) => { watch = watchContext(context); });
  await expect(page).toHaveURL(/[?&]doc=note-/);
  const name = invented(page.url());
  await expect(editorOf(page)).toBeVisible();
  await expect(statusOf(page)).toHaveAttribute('data-state', 'new');

  await page.reload();
  await expect(editorOf(page)).toBeVisible();
  expect(invented(page.url()), 'the reload keeps the invented name').toBe(name);
  await expect(statusOf(page)).toHaveAttribute('data-state', 'new');
  await page.context().close();

  // Whatever the page may have opened has been closed on the server side too.
  await expect.poll(() => metric(server, 'palimpsest_connections'), { message: 'open connections' }).toBe(0);
  expect(watch!.sockets.map((socket) => socket.url()), 'WebSockets the page opened').toEqual([]);
  expect(await documentsOn(server)).toEqual([]);
  expect(await metric(server, 'palimpsest_document_load_seconds_count'), 'documents the server loaded').toBe(0);
  expect(watch!.problems).toEqual([]);
});

test('typing into the page "/" opened creates that document, which another person can then open', async ({ server, dataFile, openPeer }) => {
  const ada = await openPeer(`${server.http}/?user=Ada`);
  await expect(ada).toHaveURL(/[?&]doc=note-/);
  const name = invented(ada.url());
  await expect(statusOf(ada)).toHaveAttribute('data-state', 'new');

  await typeAtEnd(ada, 'First words.');
  await expectSettled(ada);
  expect(await documentsOn(server)).toEqual([name]);

  const bob = await openPeer(`${server.http}/?doc=${name}&user=Bob`);
  await expectPresence(ada, ['Ada', 'Bob']);
  await expectPresence(bob, ['Ada', 'Bob']);
  await typeAtEnd(bob, ' Bob too.');
  const shown = await expectConverged([ada, bob]);
  expect(shown).toEqual(['First words. Bob too.']);
  expect(await paragraphsFromHistory(dataFile, name)).toEqual(shown);
});

test('copying the link of a new, empty document opens it on the server, so whoever opens the link meets its author', async ({ server, dataFile, openPeer }) => {
  const ada = await openPeer(`${server.http}/?user=Ada`, async (context) => {
    await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: server.http });
  });
  await expect(ada).toHaveURL(/[?&]doc=note-/);
  const name = invented(ada.url());
  await expect(statusOf(ada)).toHaveAttribute('data-state', 'new');

  await ada.getByRole('button', { name: 'Copy link' }).click();
  await expect(statusOf(ada)).toHaveAttribute('data-state', 'connected');
  // A string: the e2e type check has no DOM library.
  const link = await ada.evaluate<string>('navigator.clipboard.readText()');
  expect(new URL(link).searchParams.get('doc')).toBe(name);

  const bob = await openPeer(`${link}&user=Bob`);
  await expectPresence(ada, ['Ada', 'Bob']);
  await expectPresence(bob, ['Ada', 'Bob']);
  await typeAtEnd(bob, 'Bob writes first.');
  await expect(editorOf(ada)).toHaveText('Bob writes first.');
  const shown = await expectConverged([ada, bob]);
  expect(await documentsOn(server)).toEqual([name]);
  expect(await paragraphsFromHistory(dataFile, name)).toEqual(shown);
});
