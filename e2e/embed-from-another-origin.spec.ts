// Embedding from another site: the library at /lib/ must be loadable by a
// module script on a different origin, which browsers fetch with CORS.

import { expect, test } from './fixtures.js';
import { editorOf, expectConverged, expectPresence, typeAtEnd } from './support/editor.js';
import { writeProductPages } from './support/product-pages.js';
import { paragraphsFromHistory } from './support/server-log.js';
import { serveFolder } from './support/static-site.js';
import { rmSync } from 'node:fs';

test('a page on another site loads the library from /lib/ and two people write together', async ({ server, dataFile, docName, openPeer }) => {
  const pages = writeProductPages(server.http, server.ws, docName);
  const site = await serveFolder(pages.dir);
  try {
    const [ada, bob] = await Promise.all([openPeer(`${site.origin}/element.html`), openPeer(`${site.origin}/script.html`)]);
    // The library either loads or it does not; no need to wait the full default.
    await expect(editorOf(ada)).toBeVisible({ timeout: 5_000 });
    await expect(editorOf(bob)).toBeVisible({ timeout: 5_000 });
    await expectPresence(ada, ['Ada', 'Bob']);
    await expectPresence(bob, ['Ada', 'Bob']);

    await Promise.all([typeAtEnd(ada, 'From the element.'), typeAtEnd(bob, 'From the script.')]);
    const shown = await expectConverged([ada, bob]);
    expect(shown.join('')).toHaveLength('From the element.From the script.'.length);
    expect(await paragraphsFromHistory(dataFile, docName)).toEqual(shown);
  } finally {
    await site.close();
    rmSync(pages.dir, { recursive: true, force: true });
  }
});
