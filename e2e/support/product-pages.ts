// Pages a product team would write to embed the editor: nothing but the
// library from /lib/, once as the <palimpsest-editor> element and once through
// the mountEditor JS API. Written to a temporary folder.

import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const escape = (value: string) => value.replace(/[&<>"]/g, (char) => `&#${char.charCodeAt(0)};`);

export interface ProductPages {
  dir: string;
  /** element.html: <palimpsest-editor user="Ada"> */
  element: string;
  /** script.html: mountEditor(…, { user: { name: 'Bob' } }) */
  script: string;
}

/** `library` is where /lib/ lives ('' for the page's own origin); `socket` the WebSocket URL. */
export function writeProductPages(library: string, socket: string, doc: string): ProductPages {
  const dir = mkdtempSync(join(tmpdir(), 'palimpsest-embed-'));
  // The empty icon keeps the browser from asking the site for /favicon.ico,
  // whose 404 would be a console error in tests that count them.
  const head = `<meta charset="utf-8"><title>Team notes</title><link rel="icon" href="data:,">
    <link rel="stylesheet" href="${library}/lib/palimpsest-editor.css">`;
  writeFileSync(join(dir, 'element.html'), `<!doctype html><html><head>${head}
    <script type="module" src="${library}/lib/palimpsest-editor.js"></script></head>
    <body><h1>Team notes</h1>
    <palimpsest-editor url="${escape(socket)}" document="${escape(doc)}" user="Ada"></palimpsest-editor></body></html>`);
  writeFileSync(join(dir, 'script.html'), `<!doctype html><html><head>${head}</head>
    <body><h1>Team notes</h1><div id="notes"></div>
    <script type="module">
      import { mountEditor } from ${JSON.stringify(`${library}/lib/palimpsest-editor.js`)};
      mountEditor(document.querySelector('#notes'), {
        url: ${JSON.stringify(socket)}, document: ${JSON.stringify(doc)}, user: { name: 'Bob' },
      });
    </script></body></html>`);
  return { dir, element: join(dir, 'element.html'), script: join(dir, 'script.html') };
}
