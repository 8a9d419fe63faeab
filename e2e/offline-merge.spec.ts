// Two people who each write while cut off from the server, then come back.

import { expect, test } from './fixtures.js';
import { demoUrl, expectConverged, expectSettled, statusOf, typeAtEnd, unsyncedOf } from './support/editor.js';
import { paragraphsFromHistory } from './support/server-log.js';

test('two people who lose the network mid-edit both see both edits once it returns', async ({ server, dataFile, docName, openPeer, proxyTo }) => {
  // Each browser reaches the server through its own proxy, so each one's
  // network can be cut for real: the open WebSocket dies, new ones are refused.
  const [adaLink, bobLink] = await Promise.all([proxyTo(server.port), proxyTo(server.port)]);
  const [ada, bob] = await Promise.all([
    openPeer(demoUrl(server, docName, 'Ada', adaLink.ws)),
    openPeer(demoUrl(server, docName, 'Bob', bobLink.ws)),
  ]);
  await typeAtEnd(ada, 'Shared opening line.');
  await expectConverged([ada, bob]);

  adaLink.sever();
  bobLink.sever();
  for (const page of [ada, bob]) await expect(statusOf(page)).not.toHaveAttribute('data-state', 'connected');

  await Promise.all([typeAtEnd(ada, ' Ada, offline.'), typeAtEnd(bob, ' Bob, offline.')]);
  for (const page of [ada, bob]) await expect(unsyncedOf(page)).not.toHaveText('0');
  // Neither edit has reached the server while the network is down.
  expect((await paragraphsFromHistory(dataFile, docName)).join('')).toBe('Shared opening line.');

  adaLink.restore();
  bobLink.restore();
  // Reconnects back off (up to 15 s between attempts), hence the longer wait.
  const shown = (await expectConverged([ada, bob], 30_000)).join('');
  expect(shown).toContain('Shared opening line.');
  expect(shown).toContain(' Ada, offline.');
  expect(shown).toContain(' Bob, offline.');
  expect((await paragraphsFromHistory(dataFile, docName)).join('')).toBe(shown);
});

test("two people who switch to 'Work offline' and back both see both edits", async ({ server, dataFile, docName, openPeer }) => {
  const [ada, bob] = await Promise.all([
    openPeer(demoUrl(server, docName, 'Ada')),
    openPeer(demoUrl(server, docName, 'Bob')),
  ]);
  await typeAtEnd(ada, 'Agenda:');
  await expectConverged([ada, bob]);

  for (const page of [ada, bob]) {
    await page.getByTestId('offline-toggle').check();
    await expect(statusOf(page)).toHaveAttribute('data-state', 'offline');
  }
  await Promise.all([typeAtEnd(ada, ' budget'), typeAtEnd(bob, ' hiring')]);
  await expect(ada.getByTestId('editor')).not.toContainText('hiring');
  await expect(bob.getByTestId('editor')).not.toContainText('budget');

  for (const page of [ada, bob]) await page.getByTestId('offline-toggle').uncheck();
  const shown = (await expectConverged([ada, bob])).join('');
  expect(shown).toMatch(/^Agenda:( budget hiring| hiring budget)$/);
  for (const page of [ada, bob]) await expectSettled(page);
  expect((await paragraphsFromHistory(dataFile, docName)).join('')).toBe(shown);
});
