// Two people typing into one document at the same moment.

import { expect, test } from './fixtures.js';
import { demoUrl, expectConverged, expectPresence, isSubsequence, typeAtEnd } from './support/editor.js';
import { paragraphsFromExport, paragraphsFromHistory } from './support/server-log.js';

test('two people typing at the same time end with the same text, and the log rebuilds it', async ({ server, dataFile, docName, openPeer }) => {
  const [ada, bob] = await Promise.all([
    openPeer(demoUrl(server, docName, 'Ada')),
    openPeer(demoUrl(server, docName, 'Bob')),
  ]);
  await expectPresence(ada, ['Ada', 'Bob']);
  await expectPresence(bob, ['Ada', 'Bob']);

  const adaTyped = 'Ada writes the first lines of the story.';
  const bobTyped = 'Bob adds a note in the same place.';
  await Promise.all([typeAtEnd(ada, adaTyped, 25), typeAtEnd(bob, bobTyped, 25)]);

  const shown = await expectConverged([ada, bob]);
  // Both editors start a paragraph in the empty document at once, so there may
  // be one block or two. Concurrent inserts at one spot may interleave; still,
  // nothing is lost and each person's keystrokes stay in the order typed.
  const text = shown.join('');
  expect(text.length).toBe(adaTyped.length + bobTyped.length);
  expect(isSubsequence(adaTyped, text), `"${adaTyped}" in order within "${text}"`).toBe(true);
  expect(isSubsequence(bobTyped, text), `"${bobTyped}" in order within "${text}"`).toBe(true);

  expect(await paragraphsFromHistory(dataFile, docName)).toEqual(shown);
  expect(await paragraphsFromExport(dataFile, docName)).toEqual(shown);

  await ada.screenshot({ path: test.info().outputPath('ada.png') });
});
