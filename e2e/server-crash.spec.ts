// The server process dies (SIGKILL) while someone is typing, and comes back.

import { expect, test } from './fixtures.js';
import { demoUrl, editorOf, expectConverged, statusOf, typeAtEnd } from './support/editor.js';
import { paragraphsFromExport, paragraphsFromHistory } from './support/server-log.js';

test('a server killed and restarted mid-typing loses nothing, and the editor reconnects by itself', async ({ launchServer, dataFile, docName, openPeer }) => {
  const first = await launchServer();
  const [ada, bob] = await Promise.all([
    openPeer(demoUrl(first, docName, 'Ada')),
    openPeer(demoUrl(first, docName, 'Bob')),
  ]);
  const sentence = 'Every keystroke typed before, during and after the crash must survive it.';
  const typing = typeAtEnd(ada, sentence, 40);

  await expect(editorOf(bob)).toContainText('Every keystroke');
  await first.stop('SIGKILL');
  for (const page of [ada, bob]) await expect(statusOf(page)).not.toHaveAttribute('data-state', 'connected');
  // Some keystrokes land while no server is running at all.
  const typedBeforeRestart = (await editorOf(ada).textContent())!.length;
  expect(typedBeforeRestart).toBeLessThan(sentence.length - 10);
  await expect.poll(async () => (await editorOf(ada).textContent())!.length).toBeGreaterThan(typedBeforeRestart + 3);
  // Same port (the pages know no other address) and the same SQLite file.
  await launchServer({ port: first.port });
  await typing;

  const shown = await expectConverged([ada, bob], 30_000);
  expect(shown.join('')).toBe(sentence);
  expect(await paragraphsFromHistory(dataFile, docName)).toEqual(shown);
  expect(await paragraphsFromExport(dataFile, docName)).toEqual(shown);
});
