// Two instances behind one Redis, one person on each.

import { expect, test } from './fixtures.js';
import { demoUrl, expectConverged, expectPresence, isSubsequence, typeAtEnd } from './support/editor.js';
import { startRedis } from './support/redis.js';
import { paragraphsFromHistory } from './support/server-log.js';

test('people on two instances sharing Redis see the same text and each other', async ({ launchServer, dataFile, docName, openPeer }) => {
  const redis = await startRedis();
  try {
    // Started together on a fresh SQLite file, as a deployment would.
    const [east, west] = await Promise.all([
      launchServer({ redis: redis.url, instanceId: 'east' }),
      launchServer({ redis: redis.url, instanceId: 'west' }),
    ]);
    const [ada, bob] = await Promise.all([
      openPeer(demoUrl(east, docName, 'Ada')),
      openPeer(demoUrl(west, docName, 'Bob')),
    ]);
    await expectPresence(ada, ['Ada', 'Bob']);
    await expectPresence(bob, ['Ada', 'Bob']);

    await typeAtEnd(ada, 'Typed on east.');
    await expect(bob.getByTestId('editor')).toHaveText('Typed on east.');
    await Promise.all([typeAtEnd(ada, ' Ada again.'), typeAtEnd(bob, ' Bob from west.')]);

    const shown = await expectConverged([ada, bob]);
    // The two last edits were typed at one spot at once and may interleave.
    const text = shown.join('');
    expect(text.startsWith('Typed on east.'), text).toBe(true);
    expect(text).toHaveLength('Typed on east. Ada again. Bob from west.'.length);
    expect(isSubsequence(' Ada again.', text), text).toBe(true);
    expect(isSubsequence(' Bob from west.', text), text).toBe(true);
    // One SQLite file behind both: the log holds every edit, whichever instance took it.
    expect(await paragraphsFromHistory(dataFile, docName)).toEqual(shown);
  } finally {
    await redis.stop();
  }
});
