// The History panel with two people: versions by author, a read-only preview
// of an older one (the live document stays as it is), a restore that both
// editors show at once and that the list shows as the restorer's version, and
// colour by author on the live text: each person's words in their colour (the
// legend's), kept up to date as both go on typing.

import { SignJWT } from 'jose';
import { expect, test } from './fixtures.js';
import { demoUrl, editorOf, expectConverged, expectPresence, expectSettled, typeAtEnd } from './support/editor.js';

test('one person previews an older version and restores it; both editors show it and the list shows the restore as theirs', async ({ server, docName, openPeer }) => {
  const [ada, bob] = await Promise.all([
    openPeer(demoUrl(server, docName, 'Ada')),
    openPeer(demoUrl(server, docName, 'Bob')),
  ]);
  await expectPresence(ada, ['Ada', 'Bob']);
  await expectPresence(bob, ['Ada', 'Bob']);

  await typeAtEnd(ada, 'Ada wrote this first.');
  await expectSettled(ada);
  await expect(editorOf(bob)).toHaveText('Ada wrote this first.');
  await typeAtEnd(bob, ' Bob added this.');
  await expectSettled(bob);
  await expectConverged([ada, bob]);
  const both = 'Ada wrote this first. Bob added this.';
  await expect(editorOf(ada)).toHaveText(both);

  // Bob colours the live text by author: each person's words in their own colour, with a legend.
  await bob.getByTestId('history-toggle').click();
  await expect(bob.getByTestId('history-panel')).toBeVisible();
  await bob.getByTestId('authorship-toggle').click();
  const legend = bob.getByTestId('authorship-legend');
  await expect(legend.locator('li[data-author="Ada"]')).toContainText('Ada');
  await expect(legend.locator('li[data-author="Bob"]')).toContainText('Bob');
  await expect(editorOf(bob).locator('.pal-author[data-author="Ada"]')).toHaveText(['Ada wrote this first.']);
  await expect(editorOf(bob).locator('.pal-author[data-author="Bob"]')).toHaveText([' Bob added this.']);
  await expect(editorOf(bob)).toHaveAttribute('contenteditable', 'true');
  await expectAuthorColours(bob, ['Ada', 'Bob']);
  await bob.screenshot({ path: test.info().outputPath('bob-authorship.png') });

  // Ada opens History (from the keyboard) and selects her version, the one before Bob's.
  await ada.getByTestId('history-toggle').focus();
  await ada.keyboard.press('Enter');
  const rows = ada.getByTestId('history-version');
  await expect(rows.first()).toContainText('Bob');
  const adaRow = rows.filter({ hasNotText: 'Bob' }).first();
  await expect(adaRow).toContainText('Ada');
  await adaRow.focus();
  await ada.keyboard.press('Enter');
  const preview = ada.getByTestId('history-preview');
  await expect(preview).toHaveText('Ada wrote this first.');
  await expect(preview.locator('ins')).toContainText(['Ada wrote this first.']);
  await expect(preview).toHaveAttribute('aria-readonly', 'true');
  // The live document is unchanged: Bob's editor, and Ada's once she goes back.
  await expect(editorOf(bob)).toHaveText(both);
  await ada.screenshot({ path: test.info().outputPath('ada-preview.png') });

  // She names it; the list marks the named version.
  await ada.getByRole('textbox', { name: 'Name this version' }).fill('First draft');
  await ada.getByRole('button', { name: 'Save name' }).click();
  await expect(rows.filter({ hasNotText: 'Bob' }).first().getByTestId('history-name')).toHaveText('First draft');

  // Restoring asks in the page first; nothing changes until confirmed.
  await ada.getByTestId('history-restore').click();
  const confirm = ada.getByTestId('history-restore-confirm');
  await expect(confirm).toBeVisible();
  await expect(editorOf(bob)).toHaveText(both);
  await ada.screenshot({ path: test.info().outputPath('ada-confirm.png') });
  await confirm.click();

  await expect(editorOf(ada)).toHaveText('Ada wrote this first.');
  await expect(editorOf(bob)).toHaveText('Ada wrote this first.');
  // The restore is a new version, at the top, by Ada.
  const top = rows.first();
  await expect(top).toContainText('Restored an earlier version');
  await expect(top).toContainText('Ada');
  await expect(top).not.toContainText('Bob');
  await expect(top.getByTestId('history-name')).toContainText('Restored from seq');
  await ada.screenshot({ path: test.info().outputPath('ada-restored.png') });

  // Bob's list shows it too once it refreshes (his editor changed).
  await bob.getByTestId('authorship-toggle').click();
  await expect(editorOf(bob).locator('.pal-author')).toHaveCount(0);
  await expect(bob.getByTestId('history-version').first()).toContainText('Restored an earlier version');
  await expect(bob.getByTestId('history-version').first()).toContainText('Ada');

  // Colours on again; what both type from now on is coloured as it appears, in Bob's editor and in Ada's.
  await bob.getByTestId('authorship-toggle').click();
  await expect(editorOf(bob).locator('.pal-author[data-author="Ada"]')).toHaveText(['Ada wrote this first.']);
  await typeAtEnd(ada, ' Then Ada again.');
  await typeAtEnd(bob, ' And Bob.');
  await expectConverged([ada, bob]);
  await expect(editorOf(bob).locator('.pal-author[data-author="Ada"]')).toHaveText(['Ada wrote this first. Then Ada again.']);
  await expect(editorOf(bob).locator('.pal-author[data-author="Bob"]')).toHaveText([' And Bob.']);
  await expectAuthorColours(bob, ['Ada', 'Bob']);
  await bob.screenshot({ path: test.info().outputPath('bob-authorship-live.png') });
});

/**
 * Each author's text in the live editor has that author's legend colour (its
 * underline; the background is the same colour, lighter), and no two authors share one.
 */
async function expectAuthorColours(page: import('@playwright/test').Page, names: string[]): Promise<void> {
  const colours: string[] = [];
  for (const name of names) {
    // (Strings: the e2e type check has no DOM library.)
    const legendColour = await page.evaluate<string>(
      `getComputedStyle(document.querySelector('[data-testid="authorship-legend"] li[data-author="${name}"] .pal-history__dot')).backgroundColor`);
    const textColours = await page.evaluate<string[]>(
      `[...document.querySelectorAll('[data-testid="editor"] .pal-author[data-author="${name}"]')].map((span) => getComputedStyle(span).boxShadow)`);
    expect(legendColour).toMatch(/^rgb\(/);
    expect(textColours.length).toBeGreaterThan(0);
    for (const shadow of textColours) expect(shadow).toContain(legendColour);
    colours.push(legendColour);
  }
  expect(new Set(colours).size).toBe(names.length);
}

test('at 390 px the History panel sits above the text without covering it, and a preview fits the width', async ({ server, docName, openPeer }) => {
  const ada = await openPeer(demoUrl(server, docName, 'Ada'));
  await ada.setViewportSize({ width: 390, height: 844 });
  await typeAtEnd(ada, 'A short note typed on a phone.');
  await expectSettled(ada);
  await ada.getByTestId('history-toggle').click();
  await expect(ada.getByTestId('history-version').first()).toContainText('Ada');
  // The version being typed is the live top entry.
  await expect(ada.getByTestId('history-version').first()).toContainText('Now');
  await typeAtEnd(ada, ' More.');
  await expect(ada.getByTestId('history-version').first()).toContainText('+38 characters');
  await expect(editorOf(ada)).toBeInViewport();
  expect(await ada.evaluate<number>('document.documentElement.scrollWidth')).toBeLessThanOrEqual(390);
  await ada.screenshot({ path: test.info().outputPath('phone-panel.png'), fullPage: true });
  await ada.getByTestId('history-version').first().click();
  await expect(ada.getByTestId('history-preview')).toHaveText('A short note typed on a phone. More.');
  await expect(ada.getByTestId('history-restore')).toBeInViewport();
  expect(await ada.evaluate<number>('document.documentElement.scrollWidth')).toBeLessThanOrEqual(390);
  await ada.screenshot({ path: test.info().outputPath('phone-preview.png'), fullPage: true });
  // Colour by author on the phone: the live text coloured, the legend above it, nothing wider than the screen.
  await ada.getByTestId('authorship-toggle').click();
  await expect(editorOf(ada).locator('.pal-author[data-author="Ada"]')).toHaveText(['A short note typed on a phone. More.']);
  await expect(ada.getByTestId('authorship-legend').locator('li[data-author="Ada"]')).toBeVisible();
  expect(await ada.evaluate<number>('document.documentElement.scrollWidth')).toBeLessThanOrEqual(390);
  await ada.screenshot({ path: test.info().outputPath('phone-authorship.png'), fullPage: true });
  // Escape closes the panel and brings the live editor back.
  await ada.getByTestId('history-version').first().focus();
  await ada.keyboard.press('Escape');
  await expect(ada.getByTestId('history-panel')).toBeHidden();
  await expect(ada.getByTestId('history-preview')).toHaveCount(0);
  await expect(editorOf(ada)).toHaveText('A short note typed on a phone. More.');
  await expect(ada.getByTestId('history-toggle')).toBeFocused();
});

test('with a read-only token the history is readable and restoring says it needs write access', async ({ launchServer, docName, openPeer }) => {
  const secret = 'e2e-history-secret-e2e-history-secret-0123';
  const server = await launchServer({ jwtSecret: secret });
  const token = (sub: string, name: string, access: 'read' | 'write') => new SignJWT({ name, docs: { [docName]: access } })
    .setProtectedHeader({ alg: 'HS256' }).setSubject(sub).setIssuedAt().setExpirationTime('1h').sign(new TextEncoder().encode(secret));
  const withToken = (user: string, jwt: string) => {
    const url = new URL(demoUrl(server, docName, user));
    url.searchParams.set('token', jwt);
    return url.href;
  };
  const ada = await openPeer(withToken('Ada', await token('u-ada', 'Ada', 'write')));
  await typeAtEnd(ada, 'Only Ada may change this.');
  await expectSettled(ada);
  const reader = await openPeer(withToken('Rita', await token('u-rita', 'Rita', 'read')));
  await expect(editorOf(reader)).toHaveText('Only Ada may change this.');
  await reader.getByTestId('history-toggle').click();
  const row = reader.getByTestId('history-version').first();
  await expect(row).toContainText('Ada');
  await row.click();
  await expect(reader.getByTestId('history-preview')).toHaveText('Only Ada may change this.');
  await expect(reader.getByTestId('history-restore')).toBeDisabled();
  await expect(reader.getByText('Restoring needs write access to this document.')).toBeVisible();
  await reader.screenshot({ path: test.info().outputPath('read-only.png') });
});
