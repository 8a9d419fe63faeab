// Regression: when someone typed into the empty paragraph holding your caret,
// your caret ended up inside their word ("G[A1]race writes"): the binding
// anchored a caret in an empty paragraph to the paragraph's end, so it
// followed the first remote character and then stayed glued to it.
// Your caret stays where you left it; text typed there by others goes after it.

import type { Page } from '@playwright/test';
import { expect, test } from './fixtures.js';
import { demoUrl, editorOf, expectConverged, expectPresence, paragraphs, typeAtEnd } from './support/editor.js';
import { paragraphsFromHistory } from './support/server-log.js';

interface Caret {
  /** Index of the top-level block holding the caret. */
  block: number;
  /** Characters before the caret within that block. */
  offset: number;
  collapsed: boolean;
}

/**
 * The editor's own selection (not the DOM's), read through the demo page's
 * test hook. Poll it: ProseMirror reads caret moves the browser made itself
 * (arrow keys, clicks) from the DOM a moment later.
 */
async function caretOf(page: Page): Promise<Caret> {
  // A string, because the e2e type check has no DOM library.
  return await page.evaluate<Caret>(`(() => {
    const { selection } = window.palimpsest.editor.state;
    return { block: selection.$head.index(0), offset: selection.$head.parentOffset, collapsed: selection.empty };
  })()`);
}

// The empty paragraph last in the document (the caret used to land inside the
// word), and followed by another empty one (it used to jump to that one).
for (const { where, before, after } of [
  { where: 'last in the document', before: ["Ada's line.", ''], after: [] as string[] },
  { where: 'followed by another empty one', before: ["Ada's line.", '', ''], after: [''] },
]) {
  test(`someone typing into the empty paragraph holding your caret leaves your caret where you left it (${where})`, async ({ server, dataFile, docName, openPeer }) => {
    const [ada, grace] = await Promise.all([
      openPeer(demoUrl(server, docName, 'Ada')),
      openPeer(demoUrl(server, docName, 'Grace')),
    ]);
    await expectPresence(ada, ['Ada', 'Grace']);
    await expectPresence(grace, ['Ada', 'Grace']);

    await typeAtEnd(ada, "Ada's line.");
    for (let i = 1; i < before.length; i++) await ada.keyboard.press('Enter');
    for (let i = 2; i < before.length; i++) await ada.keyboard.press('ArrowUp');
    expect(await expectConverged([ada, grace])).toEqual(before);
    await expect.poll(() => caretOf(ada)).toEqual({ block: 1, offset: 0, collapsed: true });

    await editorOf(grace).locator(':scope > p').nth(1).click();
    await grace.keyboard.type('Grace writes', { delay: 20 });
    await expect.poll(() => paragraphs(ada)).toEqual(["Ada's line.", 'Grace writes', ...after]);
    await expect.poll(() => caretOf(ada), { message: "Ada's caret after Grace typed" }).toEqual({ block: 1, offset: 0, collapsed: true });

    await ada.keyboard.type('[A1]');
    const shown = await expectConverged([ada, grace]);
    expect(shown).toEqual(["Ada's line.", '[A1]Grace writes', ...after]);
    expect(await paragraphsFromHistory(dataFile, docName)).toEqual(shown);
  });
}

test('someone typing at the very spot of your caret inside a line leaves your caret before their text', async ({ server, docName, openPeer }) => {
  const [ada, grace] = await Promise.all([
    openPeer(demoUrl(server, docName, 'Ada')),
    openPeer(demoUrl(server, docName, 'Grace')),
  ]);
  await expectPresence(ada, ['Ada', 'Grace']);
  await expectPresence(grace, ['Ada', 'Grace']);

  await typeAtEnd(ada, 'Ada wrote.');
  expect(await expectConverged([ada, grace])).toEqual(['Ada wrote.']);
  for (const page of [ada, grace]) {
    await editorOf(page).click();
    await page.keyboard.press('ControlOrMeta+Home');
    for (let i = 0; i < 'Ada'.length; i++) await page.keyboard.press('ArrowRight');
    await expect.poll(() => caretOf(page)).toEqual({ block: 0, offset: 3, collapsed: true });
  }

  await grace.keyboard.type(' and Grace', { delay: 20 });
  await expect.poll(() => paragraphs(ada)).toEqual(['Ada and Grace wrote.']);
  await expect.poll(() => caretOf(ada), { message: "Ada's caret after Grace typed" }).toEqual({ block: 0, offset: 3, collapsed: true });

  await ada.keyboard.type('[A1]');
  expect(await expectConverged([ada, grace])).toEqual(['Ada[A1] and Grace wrote.']);
});

test('someone typing in the line above leaves your caret in your empty paragraph', async ({ server, docName, openPeer }) => {
  const [ada, grace] = await Promise.all([
    openPeer(demoUrl(server, docName, 'Ada')),
    openPeer(demoUrl(server, docName, 'Grace')),
  ]);
  await expectPresence(ada, ['Ada', 'Grace']);
  await expectPresence(grace, ['Ada', 'Grace']);

  await typeAtEnd(ada, 'Above.');
  await ada.keyboard.press('Enter');
  expect(await expectConverged([ada, grace])).toEqual(['Above.', '']);
  await expect.poll(() => caretOf(ada)).toEqual({ block: 1, offset: 0, collapsed: true });

  await editorOf(grace).locator(':scope > p').nth(0).click();
  await grace.keyboard.press('End');
  await grace.keyboard.type(' Grace adds more.', { delay: 20 });
  await expect.poll(() => paragraphs(ada)).toEqual(['Above. Grace adds more.', '']);
  await expect.poll(() => caretOf(ada), { message: "Ada's caret after Grace typed" }).toEqual({ block: 1, offset: 0, collapsed: true });

  await ada.keyboard.type('[A1]');
  expect(await expectConverged([ada, grace])).toEqual(['Above. Grace adds more.', '[A1]']);
});
