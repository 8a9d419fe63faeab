// Reloading the page while the network is down.

import { expect, test } from './fixtures.js';
import { demoUrl, editorOf, expectConverged, statusOf, typeAtEnd, unsyncedOf } from './support/editor.js';
import { paragraphsFromHistory } from './support/server-log.js';

test('a reload while the network is down keeps the local edits, and they reach the server once it is back', async ({ server, dataFile, docName, openPeer, proxyTo }) => {
  const adaLink = await proxyTo(server.port);
  const ada = await openPeer(demoUrl(server, docName, 'Ada', adaLink.ws));
  const bob = await openPeer(demoUrl(server, docName, 'Bob'));
  await typeAtEnd(ada, 'Written online.');
  await expectConverged([ada, bob]);

  adaLink.sever();
  await expect(statusOf(ada)).not.toHaveAttribute('data-state', 'connected');
  await typeAtEnd(ada, ' Written offline, then reloaded.');
  await expect(unsyncedOf(ada)).not.toHaveText('0');

  // The page itself still loads (HTTP goes straight to the server); only the
  // WebSocket is cut, so the text can come from nowhere but this browser.
  await ada.reload();
  await expect(editorOf(ada)).toHaveText('Written online. Written offline, then reloaded.');
  await expect(statusOf(ada)).not.toHaveAttribute('data-state', 'connected');
  await expect(editorOf(bob)).toHaveText('Written online.');
  expect((await paragraphsFromHistory(dataFile, docName)).join('')).toBe('Written online.');

  adaLink.restore();
  const shown = await expectConverged([ada, bob], 30_000);
  expect(shown.join('')).toBe('Written online. Written offline, then reloaded.');
  expect(await paragraphsFromHistory(dataFile, docName)).toEqual(shown);
});
