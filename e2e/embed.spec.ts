// Pages that embed the editor through the library served at /lib/.

import { rmSync } from 'node:fs';
import { expect, test } from './fixtures.js';
import { editorOf, expectConverged, expectPresence, typeAtEnd } from './support/editor.js';
import { writeProductPages } from './support/product-pages.js';
import { paragraphsFromHistory } from './support/server-log.js';
import { serveFolder } from './support/static-site.js';

test('two people on a plain page that embeds the library, one through the element and one through the JS API, write together', async ({ server, dataFile, docName, openPeer }) => {
  // The team's site serves its pages from a folder and /lib/ from Palimpsest,
  // so the library is same-origin; the WebSocket goes to the server directly.
  const pages = writeProductPages('', server.ws, docName);
  const site = await serveFolder(pages.dir, { passLibraryTo: server.http });
  try {
    const [ada, bob] = await Promise.all([openPeer(`${site.origin}/element.html`), openPeer(`${site.origin}/script.html`)]);
    await expectPresence(ada, ['Ada', 'Bob']);
    await expectPresence(bob, ['Ada', 'Bob']);

    await Promise.all([typeAtEnd(ada, 'From the element.'), typeAtEnd(bob, 'From the script.')]);
    const shown = await expectConverged([ada, bob]);
    expect(shown.join('')).toHaveLength('From the element.From the script.'.length);
    expect(await paragraphsFromHistory(dataFile, docName)).toEqual(shown);
    await ada.screenshot({ path: test.info().outputPath('embedded-element.png') });
    await bob.screenshot({ path: test.info().outputPath('embedded-script.png') });
  } finally {
    await site.close();
    rmSync(pages.dir, { recursive: true, force: true });
  }
});

test('the embed example page served by palimpsest lets two people write together', async ({ server, dataFile, openPeer }) => {
  // The example names its document "embed-example"; this test's server and
  // SQLite file are its own, so the document is still fresh.
  const [first, second] = await Promise.all([
    openPeer(`${server.http}/embed-example.html`),
    openPeer(`${server.http}/embed-example.html`),
  ]);
  await expect(editorOf(first)).toBeVisible();
  await expect(first.getByTestId('presence-user')).toHaveCount(2);
  await expect(second.getByTestId('presence-user')).toHaveCount(2);

  await typeAtEnd(first, 'Hello from the first tab.');
  await expect(editorOf(second)).toHaveText('Hello from the first tab.');
  await typeAtEnd(second, ' And the second.');
  const shown = await expectConverged([first, second]);
  expect(shown.join('')).toBe('Hello from the first tab. And the second.');
  expect(await paragraphsFromHistory(dataFile, 'embed-example')).toEqual(shown);
  await first.screenshot({ path: test.info().outputPath('embed-example.png') });
});
