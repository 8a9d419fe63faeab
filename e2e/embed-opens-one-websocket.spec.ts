// Regression: <palimpsest-editor> mounted twice when the library upgraded an
// element already in the page (attributeChangedCallback, then
// connectedCallback), so every embed opened a WebSocket, aborted it before it
// connected ("WebSocket is closed before the connection is established") and
// opened another.

import { rmSync } from 'node:fs';
import { expect, test } from './fixtures.js';
import { demoUrl, editorOf, expectConnected, expectConverged, expectPresence, typeAtEnd } from './support/editor.js';
import { watchContext, type PageWatch } from './support/page-watch.js';
import { writeProductPages } from './support/product-pages.js';
import { serveFolder } from './support/static-site.js';

function expectOneOpenSocket(watch: PageWatch, who: string): void {
  expect(watch.sockets.map((socket) => socket.url()), `${who}: WebSockets opened`).toHaveLength(1);
  expect(watch.sockets[0]!.isClosed(), `${who}: the WebSocket is still open`).toBe(false);
  expect(watch.problems, `${who}: console errors and warnings`).toEqual([]);
}

test('an embedded editor opens exactly one WebSocket and logs no console error, through the element and through mountEditor', async ({ server, docName, openPeer }) => {
  const pages = writeProductPages('', server.ws, docName);
  const site = await serveFolder(pages.dir, { passLibraryTo: server.http });
  try {
    let adaWatch: PageWatch | undefined;
    let bobWatch: PageWatch | undefined;
    const [ada, bob] = await Promise.all([
      openPeer(`${site.origin}/element.html`, async (context) => { adaWatch = watchContext(context); }),
      openPeer(`${site.origin}/script.html`, async (context) => { bobWatch = watchContext(context); }),
    ]);
    await expectPresence(ada, ['Ada', 'Bob']);
    await expectPresence(bob, ['Ada', 'Bob']);
    await Promise.all([typeAtEnd(ada, 'From the element.'), typeAtEnd(bob, 'From the script.')]);
    await expectConverged([ada, bob]);

    expectOneOpenSocket(adaWatch!, 'element.html');
    expectOneOpenSocket(bobWatch!, 'script.html');
  } finally {
    await site.close();
    rmSync(pages.dir, { recursive: true, force: true });
  }
});

test('the demo page opens exactly one WebSocket and logs no console error', async ({ server, docName, openPeer }) => {
  let watch: PageWatch | undefined;
  const page = await openPeer(demoUrl(server, docName, 'Ada'), async (context) => { watch = watchContext(context); });
  await expectConnected(page);
  await typeAtEnd(page, 'One socket is enough.');
  await expectConverged([page]);
  expectOneOpenSocket(watch!, 'demo page');
});

test('changing the document attribute of <palimpsest-editor> closes its WebSocket and opens one new one', async ({ server, docName, openPeer }) => {
  const pages = writeProductPages('', server.ws, docName);
  const site = await serveFolder(pages.dir, { passLibraryTo: server.http });
  try {
    let watch: PageWatch | undefined;
    const page = await openPeer(`${site.origin}/element.html`, async (context) => { watch = watchContext(context); });
    await expectConnected(page);
    await typeAtEnd(page, 'In the first document.');
    await expectConverged([page]);

    const other = `${docName}-other`;
    await page.locator('palimpsest-editor').evaluate((element, name) => element.setAttribute('document', name), other);
    await expect(page.getByTestId('doc-name')).toHaveText(other);
    await expectConnected(page);
    await expect(editorOf(page)).toHaveText('');
    await typeAtEnd(page, 'In the second document.');
    await expectConverged([page]);

    expect(watch!.sockets).toHaveLength(2);
    expect(watch!.sockets[0]!.isClosed(), 'the first document\'s WebSocket is closed').toBe(true);
    expect(watch!.sockets[1]!.isClosed(), 'the second document\'s WebSocket is open').toBe(false);
    expect(watch!.problems).toEqual([]);
  } finally {
    await site.close();
    rmSync(pages.dir, { recursive: true, force: true });
  }
});
