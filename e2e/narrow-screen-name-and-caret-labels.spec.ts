// Regression: at 390 px (a phone) the demo page hid the product name, and
// other people's caret labels near the right edge were cut off by the
// editor's card. The name stays; a label that would not fit on the right of
// its caret hangs to the left of it.

import type { Page } from '@playwright/test';
import { expect, test } from './fixtures.js';
import { demoUrl, editorOf, expectConverged, expectPresence } from './support/editor.js';

const PHONE = { width: 390, height: 844 };

interface Box { left: number; right: number; top: number; bottom: number }

/** Bounding boxes in the page's viewport, via the DOM (a string: the e2e type check has no DOM library). */
async function boxOf(page: Page, selector: string): Promise<Box> {
  return await page.evaluate<Box>(`(() => {
    const { left, right, top, bottom } = document.querySelector(${JSON.stringify(selector)}).getBoundingClientRect();
    return { left, right, top, bottom };
  })()`);
}

test('at 390 px the product name is shown and a caret label near the right edge stays inside the editor', async ({ server, docName, openPeer }) => {
  const [ada, grace] = await Promise.all([
    openPeer(demoUrl(server, docName, 'Ada')),
    openPeer(demoUrl(server, docName, 'Grace Hopper')),
  ]);
  await ada.setViewportSize(PHONE);
  await expectPresence(ada, ['Ada', 'Grace Hopper']);
  await expectPresence(grace, ['Ada', 'Grace Hopper']);

  // The header: name, "Copy link" and "New document" all inside the width, nothing scrolls sideways.
  await expect(ada.locator('.demo-brand__name')).toBeVisible();
  await expect(ada.locator('.demo-brand__name')).toHaveText('Palimpsest');
  const name = await boxOf(ada, '.demo-brand__name');
  expect(name.left).toBeGreaterThanOrEqual(0);
  expect(name.right).toBeLessThanOrEqual(PHONE.width);
  await expect(ada.getByRole('link', { name: 'New document' })).toBeInViewport({ ratio: 1 });
  await expect(ada.getByRole('button', { name: 'Copy link' })).toBeInViewport({ ratio: 1 });
  expect(await ada.evaluate<number>('document.documentElement.scrollWidth')).toBeLessThanOrEqual(PHONE.width);

  // One long paragraph; Grace's caret goes near the end of its first line as Ada sees it.
  await editorOf(grace).click();
  await grace.evaluate(`window.palimpsest.editor.commands.insertContent(
    'People write here together, and each sees where the others are typing right now.')`);
  expect(await expectConverged([ada, grace])).toHaveLength(1);
  const nearLineEnd = await ada.evaluate<number>(`(() => {
    const { view } = window.palimpsest.editor;
    const top = view.coordsAtPos(1).top;
    let pos = 1;
    while (pos + 1 < view.state.doc.content.size && view.coordsAtPos(pos + 1).top === top) pos += 1;
    return pos - 2; // clearly on the first line, not at the wrap
  })()`);
  await grace.evaluate(`window.palimpsest.editor.chain().focus().setTextSelection(${nearLineEnd}).run()`);

  const label = ada.locator('.collaboration-carets__label[data-name="Grace Hopper"]');
  await expect(label).toBeVisible();
  const card = await boxOf(ada, '.pal-editor');
  const labelWidth = await label.evaluate((element) => element.getBoundingClientRect().width);
  // Meaningful only if the label would not fit to the right of the caret; wait for Grace's
  // new selection to reach Ada (until then her caret still shows where she typed).
  await expect.poll(async () => (await boxOf(ada, '.collaboration-carets__caret')).left + labelWidth,
    { message: 'caret left + label width' }).toBeGreaterThan(card.right);

  await expect.poll(async () => {
    const box = await boxOf(ada, '.collaboration-carets__label[data-name="Grace Hopper"]');
    return box.left >= Math.max(card.left, 0) && box.right <= Math.min(card.right, PHONE.width);
  }, { message: 'the label lies inside the editor card and the viewport' }).toBe(true);
  await expect(label).toBeInViewport({ ratio: 1 });

  // Grace (wide) sees Ada's caret and label too, inside her editor.
  await editorOf(ada).click();
  await ada.keyboard.press('ControlOrMeta+End');
  await expect(grace.locator('.collaboration-carets__label[data-name="Ada"]')).toBeInViewport({ ratio: 1 });

  await ada.screenshot({ path: test.info().outputPath('ada-390px.png') });
  await grace.screenshot({ path: test.info().outputPath('grace-wide.png') });
});
