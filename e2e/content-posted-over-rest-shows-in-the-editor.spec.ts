// Content written over REST (POST /api/documents/{doc}/content) while a
// browser has the document open shows up in its editor at once, with its
// structure (headings, lists, marks, links), and what the browser typed stays.

import { expect, test } from './fixtures.js';
import { demoUrl, editorOf, expectConnected, expectSettled, paragraphs, typeAtEnd } from './support/editor.js';

test('Markdown and HTML posted over REST appear in an open editor, after and instead of what was typed', async ({ server, docName, openPeer }) => {
  const ada = await openPeer(demoUrl(server, docName, 'Ada'));
  await expectConnected(ada);
  await typeAtEnd(ada, 'Typed by Ada.');
  await expectSettled(ada);

  const post = async (body: string, type: string, mode: 'replace' | 'append') => {
    const response = await fetch(`${server.http}/api/documents/${encodeURIComponent(docName)}/content?mode=${mode}`, {
      method: 'POST', body, headers: { 'content-type': type },
    });
    expect(response.status, await response.clone().text()).toBe(200);
    return (await response.json()) as { doc: string; seq: number };
  };

  const appended = await post('## From the API\n\nWith **bold** and a [link](https://example.com/notes).\n\n- first\n- second\n', 'text/markdown', 'append');
  expect(appended.seq).toBeGreaterThan(1);
  const editor = editorOf(ada);
  await expect(editor.locator('h2')).toHaveText('From the API');
  await expect(editor.locator('p strong')).toHaveText('bold');
  await expect(editor.locator('a[href="https://example.com/notes"]')).toHaveText('link');
  await expect(editor.locator('ul > li')).toHaveText(['first', 'second']);
  // The editor's trailing-node rule adds an empty paragraph after a document that ends in a list.
  await expect.poll(() => paragraphs(ada)).toEqual(['Typed by Ada.', 'From the API', 'With bold and a link.', 'firstsecond', '']);

  await post('<h1>Replaced</h1><p>Only <em>this</em> now.</p>', 'text/html', 'replace');
  await expect.poll(() => paragraphs(ada), { message: 'the editor shows the replacement' }).toEqual(['Replaced', 'Only this now.']);
  await expect(editor.locator('h1')).toHaveText('Replaced');
  await expect(editor.locator('p em')).toHaveText('this');

  // The editor keeps working on top of it: its next keystrokes are logged after the REST writes.
  await typeAtEnd(ada, ' Ada again.');
  await expectSettled(ada);
  const markdown = await (await fetch(`${server.http}/api/documents/${encodeURIComponent(docName)}/content?format=markdown`)).text();
  expect(markdown).toBe('# Replaced\n\nOnly *this* now. Ada again.\n');
  await ada.screenshot({ path: test.info().outputPath('ada.png') });
});
