// A document's content over HTTP: POST /api/documents/{doc}/updates (a Yjs
// update) and GET/POST /api/documents/{doc}/content (Markdown, HTML,
// ProseMirror JSON, plain text). Writes are logged with the token's user and
// display name and reach connected editors at once; bad input is refused with
// a 4xx that says what is wrong and changes nothing; --max-document-bytes
// holds on both routes. Real server processes on real SQLite files, stock
// @hocuspocus/provider clients.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { isDeepStrictEqual } from 'node:util';
import { getSchema } from '@tiptap/core';
import { yXmlFragmentToProseMirrorRootNode } from '@tiptap/y-tiptap';
import * as Y from 'yjs';
import { openEventStore } from '../persistence/index.js';
import { loadServeConfig } from '../server/config.js';
import type { ConversionLimits } from '../server/content-api.js';
import { editorSchemaExtensions } from '../server/editor-schema.js';
import { createCollabServer } from '../server/index.js';
import { createLogger } from '../server/logger.js';
import { hocuspocusClient, waitSettled } from './helpers/clients.js';
import { startServerProcess, type ServerProcess } from './helpers/server-process.js';
import { tempDir } from './helpers/temp.js';
import { hs256Token, TEST_SECRET } from './helpers/tokens.js';
import { waitFor } from './helpers/wait.js';

/** A document using every node and mark of the editor's schema, as the server writes Markdown back. */
const SAMPLE_MARKDOWN = `# Release notes

Palimpsest keeps **every edit** in a log, *before* it says saved. Read the [README](https://example.com/readme) or run \`npx palimpsest history\`.

## What changed

- Content over **REST**
- Formats:
  - Markdown
  - HTML
- ~~Nothing removed~~

1. Post the text
2. Read it back

> A quote with *emphasis*

\`\`\`ts
const answer = await fetch(url);
console.log(answer.status);
\`\`\`

---

Last line with a hard  
break.
`;

const SAMPLE_HTML = '<h2>Agenda</h2><p>Bring <strong>notes</strong>, <em>ideas</em> and <u>questions</u>; see ' +
  '<a target="_blank" rel="noopener noreferrer nofollow" href="https://example.com/agenda">the agenda</a>.</p>' +
  '<ol><li><p>Welcome</p></li><li><p>Plans</p><ul><li><p>Q1</p></li></ul></li></ol>' +
  '<pre><code class="language-sh">npm test</code></pre><blockquote><p>Quoted <code>code</code></p></blockquote><hr><p>End</p>';

const link = (href: string) => ({ type: 'link', attrs: { href, target: '_blank', rel: 'noopener noreferrer nofollow', class: null, title: null } });
const text = (value: string, marks?: unknown[]) => (marks === undefined ? { type: 'text', text: value } : { type: 'text', marks, text: value });
const paragraph = (...content: unknown[]) => ({ type: 'paragraph', content });
const item = (...content: unknown[]) => ({ type: 'listItem', content });

/** ProseMirror JSON with every attribute the schema gives, as the server answers it. */
const SAMPLE_JSON = {
  type: 'doc',
  content: [
    { type: 'heading', attrs: { level: 3 }, content: [text('Minutes')] },
    paragraph(text('Decided: '), text('ship', [{ type: 'bold' }, { type: 'italic' }]), text(' on Friday; '), text('docs', [link('https://example.com/docs')]), { type: 'hardBreak' }, text('next line')),
    { type: 'bulletList', content: [item(paragraph(text('one'))), item(paragraph(text('two', [{ type: 'strike' }])))] },
    { type: 'orderedList', attrs: { start: 3, type: null }, content: [item(paragraph(text('third')))] },
    { type: 'codeBlock', attrs: { language: 'json' }, content: [text('{ "a": 1 }')] },
    { type: 'blockquote', content: [paragraph(text('quoted'))] },
    { type: 'horizontalRule' },
    paragraph(text('end', [{ type: 'code' }])),
  ],
};

const editorSchema = getSchema(editorSchemaExtensions());
/** A Yjs editor fragment as the demo editor reads it, in ProseMirror JSON. */
const asEditorReadsIt = (fragment: Y.XmlFragment): unknown => JSON.parse(JSON.stringify(yXmlFragmentToProseMirrorRootNode(fragment, editorSchema).toJSON()));

interface ContentJson { doc: string; field: string; seq: number; exists: boolean; content: unknown }
interface ErrorJson { error: { code: string; message: string } }

function contentClient(server: ServerProcess, doc: string, token?: string) {
  const base = `${server.http}/api/documents/${encodeURIComponent(doc)}`;
  const auth: Record<string, string> = token === undefined ? {} : { authorization: `Bearer ${token}` };
  return {
    get: (query: string, as = token) => fetch(`${base}/content?${query}`, { headers: as === undefined ? {} : { authorization: `Bearer ${as}` } }),
    async read(format: 'text' | 'html' | 'markdown', query = ''): Promise<string> {
      const response = await fetch(`${base}/content?format=${format}${query}`, { headers: auth });
      assert.equal(response.status, 200, await response.clone().text());
      return response.text();
    },
    async json(query = ''): Promise<ContentJson> {
      const response = await fetch(`${base}/content?format=json${query}`, { headers: auth });
      assert.equal(response.status, 200, await response.clone().text());
      return (await response.json()) as ContentJson;
    },
    post: (body: string | Uint8Array, type: string, query = '', as = token) => fetch(`${base}/content${query}`, {
      method: 'POST', body, headers: { 'content-type': type, ...(as === undefined ? {} : { authorization: `Bearer ${as}` }) },
    }),
    async history(): Promise<Array<{ seq: number; user: string | null; displayName: string | null }>> {
      return (await (await fetch(`${base}/history`, { headers: auth })).json()) as Array<{ seq: number; user: string | null; displayName: string | null }>;
    },
  };
}

async function posted(response: Response): Promise<{ doc: string; seq: number }> {
  assert.equal(response.status, 200, await response.clone().text());
  return (await response.json()) as { doc: string; seq: number };
}

test('a posted Yjs update is logged with the token\'s user, answered with its seq, and seen by a connected editor at once', async (t) => {
  const server = await startServerProcess(t, ['--data', join(tempDir(t), 'content.db'), '--jwt-secret', TEST_SECRET]);
  const writer = await hs256Token({ sub: 'ada', docs: { 'notes/*': 'write' } });
  const reader = await hs256Token({ sub: 'eve', docs: { 'notes/*': 'read' } });
  const poster = await hs256Token({ sub: 'bob', name: 'Bob B.', docs: { 'notes/*': 'write' } });
  const editor = hocuspocusClient(t, server.url, 'notes/post', { token: writer });
  editor.doc.getText('text').insert(0, 'typed');
  await waitSettled([editor]);

  const source = new Y.Doc();
  Y.applyUpdate(source, Y.encodeStateAsUpdate(editor.doc));
  const before = Y.encodeStateVector(source);
  source.getText('text').insert(5, ' and posted');
  const update = Y.encodeStateAsUpdate(source, before);
  const url = `${server.http}/api/documents/notes%2Fpost/updates`;
  const post = (body: Uint8Array | string, token: string, type = 'application/octet-stream') =>
    fetch(url, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': type }, body });

  assert.equal((await post(update, reader)).status, 403, 'read is not enough');
  const wrongType = await post(update, poster, 'text/plain');
  assert.equal(wrongType.status, 415);
  assert.match(((await wrongType.json()) as ErrorJson).error.message, /application\/octet-stream/);
  const garbage = await post(new Uint8Array([1, 2, 3, 250, 251]), poster);
  assert.equal(garbage.status, 400);
  assert.equal(((await garbage.json()) as ErrorJson).error.code, 'MALFORMED_UPDATE');
  const history = () => contentClient(server, 'notes/post', reader).history();
  assert.equal((await history()).length, 1, 'refused input logged nothing');

  const answer = await post(update, poster);
  assert.equal(answer.status, 200);
  assert.deepEqual(await answer.json(), { doc: 'notes/post', seq: 2 });
  assert.deepEqual((await history()).map((e) => [e.seq, e.user, e.displayName]), [[1, 'ada', null], [2, 'bob', 'Bob B.']]);
  await waitFor(() => editor.doc.getText('text').toString() === 'typed and posted', { message: 'the editor sees the posted update' });

  // Posting it again changes nothing and logs nothing: the answer is the seq that holds it.
  assert.deepEqual(await (await post(update, poster)).json(), { doc: 'notes/post', seq: 2 });
  assert.equal((await history()).length, 2);
});

test('Markdown, HTML and ProseMirror JSON each come back as they were posted, through the editor\'s schema', async (t) => {
  const server = await startServerProcess(t, ['--data', join(tempDir(t), 'round-trips.db')]);

  const markdown = contentClient(server, 'round/markdown');
  assert.deepEqual(await posted(await markdown.post(SAMPLE_MARKDOWN, 'text/markdown')), { doc: 'round/markdown', seq: 1 });
  assert.equal(await markdown.read('markdown'), SAMPLE_MARKDOWN);
  // It went through the schema, not in as text: the structure is there in every format.
  const structure = (await markdown.json()).content as { content: Array<{ type: string; attrs?: Record<string, unknown> }> };
  assert.deepEqual(structure.content.map((node) => node.type),
    ['heading', 'paragraph', 'heading', 'bulletList', 'orderedList', 'blockquote', 'codeBlock', 'horizontalRule', 'paragraph']);
  assert.deepEqual(structure.content[6].attrs, { language: 'ts' });
  const html = await markdown.read('html');
  assert.match(html, /^<h1>Release notes<\/h1><p>Palimpsest keeps <strong>every edit<\/strong> in a log, <em>before<\/em>/);
  assert.match(html, /<a [^>]*href="https:\/\/example\.com\/readme">README<\/a>/);
  assert.equal(await markdown.read('text'), [
    'Release notes',
    'Palimpsest keeps every edit in a log, before it says saved. Read the README or run npx palimpsest history.',
    'What changed', 'Content over REST', 'Formats:', 'Markdown', 'HTML', 'Nothing removed', 'Post the text', 'Read it back',
    'A quote with emphasis', 'const answer = await fetch(url);\nconsole.log(answer.status);', 'Last line with a hard\nbreak.',
  ].join('\n\n'));

  const htmlDoc = contentClient(server, 'round/html');
  await posted(await htmlDoc.post(SAMPLE_HTML, 'text/html; charset=utf-8'));
  const htmlAnswer = await htmlDoc.get('format=html');
  assert.equal(htmlAnswer.headers.get('content-type'), 'text/html; charset=utf-8');
  assert.match(htmlAnswer.headers.get('content-security-policy') ?? '', /sandbox/, 'HTML answers never run in this origin');
  assert.equal(await htmlAnswer.text(), SAMPLE_HTML);

  const jsonDoc = contentClient(server, 'round/json');
  await posted(await jsonDoc.post(JSON.stringify(SAMPLE_JSON), 'application/json'));
  const answer = await jsonDoc.json();
  assert.deepEqual(answer, { doc: 'round/json', field: 'default', seq: 1, exists: true, content: SAMPLE_JSON });
  // The stored Yjs fragment is what an editor opening the document reads.
  const state = new Y.Doc();
  Y.applyUpdate(state, new Uint8Array(await (await fetch(`${server.http}/api/documents/round%2Fjson/state`)).arrayBuffer()));
  assert.deepEqual(asEditorReadsIt(state.getXmlFragment('default')), SAMPLE_JSON);

  // Posting the same content again changes nothing: no entry, same seq.
  assert.deepEqual(await posted(await jsonDoc.post(JSON.stringify(SAMPLE_JSON), 'application/json')), { doc: 'round/json', seq: 1 });
  assert.equal((await jsonDoc.history()).length, 1);
});

test('replace changes only what differs, append adds after the end, and ?at= reads any past version by seq or time', async (t) => {
  const server = await startServerProcess(t, ['--data', join(tempDir(t), 'versions.db')]);
  const notes = contentClient(server, 'versions');
  const first = await posted(await notes.post('# Plan\n\nFirst draft.\n', 'text/markdown'));
  const second = await posted(await notes.post('# Plan\n\nSecond draft, *better*.\n', 'text/markdown', '?mode=replace'));
  const third = await posted(await notes.post('- and a list\n', 'text/markdown', '?mode=append'));
  assert.deepEqual([first.seq, second.seq, third.seq], [1, 2, 3]);
  assert.equal(await notes.read('markdown'), '# Plan\n\nSecond draft, *better*.\n\n- and a list\n');

  // The replace kept the unchanged heading: its Yjs items are still those of seq 1.
  const authorship = (await (await fetch(`${server.http}/api/documents/versions/authorship`)).json()) as { blocks: Array<{ type: string; runs: unknown[] }> };
  assert.deepEqual(authorship.blocks[0], { type: 'heading', runs: [{ text: 'Plan', author: null, user: null, seq: 1 }] });

  assert.equal(await notes.read('markdown', '&at=1'), '# Plan\n\nFirst draft.\n');
  assert.equal(await notes.read('markdown', '&at=2'), '# Plan\n\nSecond draft, *better*.\n');
  const entries = (await (await fetch(`${server.http}/api/documents/versions/history`)).json()) as Array<{ seq: number; receivedAt: string }>;
  assert.equal(await notes.read('markdown', `&at=${encodeURIComponent(entries[0].receivedAt)}`), '# Plan\n\nFirst draft.\n', 'a time reads the last seq at or before it');
  const past = await notes.get('format=text&at=1');
  assert.deepEqual([past.headers.get('x-palimpsest-seq'), await past.text()], ['1', 'Plan\n\nFirst draft.']);
  assert.equal((await notes.json('&at=2')).seq, 2);
  const beyond = await notes.get('format=json&at=9');
  assert.equal(beyond.status, 404);
  assert.equal(((await beyond.json()) as ErrorJson).error.code, 'UNKNOWN_SEQ');
  assert.equal((await notes.get('format=json&at=yesterday')).status, 400);

  // Appending to a new document starts it; replacing with nothing empties it.
  const fresh = contentClient(server, 'versions/fresh');
  await posted(await fresh.post('<p>only line</p>', 'text/html', '?mode=append'));
  assert.equal(await fresh.read('html'), '<p>only line</p>');
  await posted(await fresh.post('', 'text/markdown'));
  assert.deepEqual((await fresh.json()).content, { type: 'doc', content: [] });
  assert.equal(await fresh.read('markdown', '&at=1'), 'only line\n');
});

test('a document never written reads as empty in every format, says so, and is not created by reading', async (t) => {
  const server = await startServerProcess(t, ['--data', join(tempDir(t), 'unknown.db')]);
  const nobody = contentClient(server, 'never/written');
  assert.deepEqual(await nobody.json(), { doc: 'never/written', field: 'default', seq: 0, exists: false, content: { type: 'doc', content: [] } });
  for (const format of ['text', 'html', 'markdown'] as const) {
    const response = await nobody.get(`format=${format}`);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('x-palimpsest-exists'), 'false', format);
    assert.equal(response.headers.get('x-palimpsest-seq'), '0', format);
    assert.equal(await response.text(), '', format);
  }
  assert.equal((await nobody.get('format=markdown&at=1')).status, 404);
  const unknownFormat = await nobody.get('format=pdf');
  assert.equal(unknownFormat.status, 400);
  assert.match(((await unknownFormat.json()) as ErrorJson).error.message, /json, html, markdown, text/);
  assert.deepEqual(await (await fetch(`${server.http}/api/documents`)).json(), { documents: [] });
});

test('text reads a Y.Text field; other formats and writes to it are refused with 409', async (t) => {
  const server = await startServerProcess(t, ['--data', join(tempDir(t), 'ytext.db')]);
  const editor = hocuspocusClient(t, server.url, 'plain');
  editor.doc.getText('notes').insert(0, 'line one\nline two');
  await waitSettled([editor]);
  const plain = contentClient(server, 'plain');
  assert.equal(await plain.read('text', '&field=notes'), 'line one\nline two');
  const asMarkdown = await plain.get('format=markdown&field=notes');
  assert.equal(asMarkdown.status, 409);
  assert.match(((await asMarkdown.json()) as ErrorJson).error.message, /"notes" is a Y\.Text: ask for format=text/);
  const write = await plain.post('# no', 'text/markdown', '?field=notes');
  assert.equal(write.status, 409);
  assert.equal(((await write.json()) as ErrorJson).error.code, 'FIELD_TYPE_MISMATCH');
  assert.equal((await plain.history()).length, 1);
  // The editor field of the same document is still empty and writable.
  assert.deepEqual((await plain.json()).content, { type: 'doc', content: [] });
});

test('content posted over REST reaches a connected provider at once, logged with the token\'s user and display name', async (t) => {
  const server = await startServerProcess(t, ['--data', join(tempDir(t), 'live.db'), '--jwt-secret', TEST_SECRET]);
  const editorToken = await hs256Token({ sub: 'ada', docs: { 'team/*': 'write' } });
  const poster = await hs256Token({ sub: 'svc-import', name: 'Importer', docs: { 'team/*': 'write' } });
  const editor = hocuspocusClient(t, server.url, 'team/live', { token: editorToken });
  await waitFor(() => editor.settled(), { message: 'the editor is connected' });
  const live = contentClient(server, 'team/live', poster);

  const { seq } = await posted(await live.post(JSON.stringify(SAMPLE_JSON), 'application/json'));
  await waitFor(() => isDeepStrictEqual(asEditorReadsIt(editor.doc.getXmlFragment('default')), SAMPLE_JSON),
    { message: 'the provider holds the posted document' });
  assert.deepEqual((await live.history()).map((e) => [e.seq, e.user, e.displayName]), [[seq, 'svc-import', 'Importer']]);

  // The editor types after it; an append lands after the editor's text.
  const fragment = editor.doc.getXmlFragment('default');
  const typed = new Y.XmlElement('paragraph');
  typed.insert(0, [new Y.XmlText('typed in the editor')]);
  fragment.insert(fragment.length, [typed]);
  await waitSettled([editor]);
  await posted(await live.post('appended over REST', 'text/markdown', '?mode=append'));
  await waitFor(() => {
    const blocks = (asEditorReadsIt(fragment) as { content: Array<{ content?: Array<{ text: string }> }> }).content;
    return blocks.slice(-2).map((block) => block.content?.[0]?.text).join('|') === 'typed in the editor|appended over REST';
  }, { message: 'the append arrives after the editor\'s own paragraph' });
  assert.match(await live.read('markdown'), /typed in the editor\n\nappended over REST\n$/);
});

test('a bad body is refused with a 4xx naming what is wrong, and changes neither the log nor the content', async (t) => {
  const server = await startServerProcess(t, ['--data', join(tempDir(t), 'bad.db'), '--jwt-secret', TEST_SECRET, '--max-message-bytes', '4096']);
  const writer = await hs256Token({ sub: 'w', docs: { '*': 'write' } });
  const reader = await hs256Token({ sub: 'r', docs: { '*': 'read' } });
  const outsider = await hs256Token({ sub: 'o', docs: { elsewhere: 'write' } });
  const doc = contentClient(server, 'guarded', writer);
  const watcher = hocuspocusClient(t, server.url, 'guarded', { token: reader });
  await posted(await doc.post(SAMPLE_MARKDOWN, 'text/markdown'));
  await waitFor(() => watcher.doc.getXmlFragment('default').length > 0, { message: 'the watcher has the document' });
  const before = { markdown: await doc.read('markdown'), history: await doc.history(), watcher: Y.encodeStateVector(watcher.doc) };

  const cases: Array<[string, string | Uint8Array, string, string, number, string, RegExp]> = [
    ['malformed JSON', '{"type": "doc", "content": [', 'application/json', '', 400, 'MALFORMED_CONTENT', /not valid JSON/],
    ['an unknown node', JSON.stringify({ type: 'doc', content: [{ type: 'table' }] }), 'application/json', '', 422, 'SCHEMA_MISMATCH', /Unknown node type: table/],
    ['an unknown mark', JSON.stringify({ type: 'doc', content: [paragraph(text('x', [{ type: 'highlight' }]))] }), 'application/json', '', 422, 'SCHEMA_MISMATCH', /highlight/],
    ['text straight in the doc', JSON.stringify({ type: 'doc', content: [text('loose')] }), 'application/json', '', 422, 'SCHEMA_MISMATCH', /Invalid content for node doc/],
    ['a top node that is not doc', JSON.stringify(paragraph(text('x'))), 'application/json', '', 422, 'SCHEMA_MISMATCH', /top node must be of type "doc"/],
    ['a JSON array', '[1, 2]', 'application/json', '', 422, 'SCHEMA_MISMATCH', /ProseMirror document/],
    ['plain text', 'hello', 'text/plain', '', 415, 'UNSUPPORTED_MEDIA_TYPE', /text\/markdown/],
    // (fetch labels a string body text/plain; bytes go without a Content-Type)
    ['no content type', new TextEncoder().encode('hello'), '', '', 415, 'UNSUPPORTED_MEDIA_TYPE', /got "none"/],
    ['a charset other than UTF-8', 'hello', 'text/markdown; charset=latin1', '', 415, 'UNSUPPORTED_MEDIA_TYPE', /UTF-8/],
    ['bytes that are not UTF-8', new Uint8Array([0x23, 0x20, 0xff, 0xfe]), 'text/markdown', '', 400, 'MALFORMED_CONTENT', /UTF-8/],
    ['an unknown mode', 'x', 'text/markdown', '?mode=merge', 400, 'BAD_REQUEST', /replace or append/],
    ['a body over --max-message-bytes', 'x'.repeat(5000), 'text/markdown', '', 413, 'BODY_TOO_LARGE', /4096 bytes/],
  ];
  for (const [what, body, type, query, status, code, message] of cases) {
    const response = await fetch(`${server.http}/api/documents/guarded/content${query}`, {
      method: 'POST', body, headers: { authorization: `Bearer ${writer}`, ...(type === '' ? {} : { 'content-type': type }) },
    });
    const answer = (await response.json()) as ErrorJson;
    assert.equal(response.status, status, `${what}: ${JSON.stringify(answer)}`);
    assert.equal(answer.error.code, code, what);
    assert.match(answer.error.message, message, what);
  }
  assert.equal((await doc.post('# mine', 'text/markdown', '', reader)).status, 403, 'a read-only token cannot write');
  assert.equal((await doc.post('# mine', 'text/markdown', '', outsider)).status, 403, 'nor can a token for other documents');
  assert.equal((await doc.post('# mine', 'text/markdown', '', '')).status, 401);
  assert.equal((await doc.get('format=json', outsider)).status, 403, 'reading needs read access');
  assert.equal((await doc.get('format=markdown', reader)).status, 200, 'which a read-only token has');

  assert.equal(await doc.read('markdown'), before.markdown, 'the content is unchanged');
  assert.deepEqual(await doc.history(), before.history, 'nothing was logged');
  assert.deepEqual(Y.encodeStateVector(watcher.doc), before.watcher, 'the connected editor received nothing');
});

test('--max-document-bytes holds for POST /updates and POST /content as for WebSocket updates: 413 DOCUMENT_TOO_LARGE, nothing logged', async (t) => {
  const server = await startServerProcess(t, ['--data', join(tempDir(t), 'size.db'), '--max-document-bytes', '20000']);
  const doc = contentClient(server, 'sized');
  await posted(await doc.post('small and fine\n', 'text/markdown'));
  const history = await doc.history();

  const big = await doc.post(`${'word '.repeat(6000)}\n`, 'text/markdown', '?mode=append');
  const bigAnswer = (await big.json()) as ErrorJson;
  assert.equal(big.status, 413);
  assert.equal(bigAnswer.error.code, 'DOCUMENT_TOO_LARGE');
  assert.match(bigAnswer.error.message, /the limit is 20000 \(--max-document-bytes\)/);

  const source = new Y.Doc();
  source.getText('raw').insert(0, 'x'.repeat(30_000));
  const update = await fetch(`${server.http}/api/documents/sized/updates`, {
    method: 'POST', body: Y.encodeStateAsUpdate(source), headers: { 'content-type': 'application/octet-stream' },
  });
  assert.equal(update.status, 413);
  assert.equal(((await update.json()) as ErrorJson).error.code, 'DOCUMENT_TOO_LARGE');

  assert.deepEqual(await doc.history(), history, 'nothing was logged');
  assert.equal(await doc.read('markdown'), 'small and fine\n');
  const metrics = await (await fetch(`${server.http}/metrics`)).text();
  assert.equal(Number(/^palimpsest_refusals_total\{[^}]*reason="document-too-large"[^}]*\} (\d+)$/m.exec(metrics)?.[1]), 2);
  // Within the limit both routes still write.
  await posted(await doc.post('a little more\n', 'text/markdown', '?mode=append'));
  assert.equal(await doc.read('markdown'), 'small and fine\n\na little more\n');
});

/** A server in this process, with conversion limits of the test's choosing (the defaults are 10 s and 16 waiting). */
async function serverWithConversionLimits(t: TestContext, conversion: ConversionLimits) {
  const config = loadServeConfig(['--port', '0', '--data', join(tempDir(t), 'limits.db'), '--log-level', 'silent'], {}, { staticDir: null });
  const store = openEventStore({ path: config.store.data, synchronous: 'normal' });
  const server = createCollabServer({ config, store, logger: createLogger({ level: 'silent', instanceId: 'test' }), extensions: [], contentConversion: conversion });
  const { port } = await server.listen();
  t.after(async () => {
    await server.close();
    await store.close();
  });
  return { http: `http://127.0.0.1:${port}`, url: `ws://127.0.0.1:${port}` } as ServerProcess;
}

/** About 2 MB of lists and paragraphs: minutes of work for the Markdown parser, whose cost grows faster than the text. */
function slowMarkdown(): string {
  let markdown = '';
  for (let section = 0; markdown.length < 2_000_000; section += 1) {
    markdown += `## Section ${section}\n\nSome **bold** and a [link](https://example.com/${section}).\n\n1. one\n2. two\n\n`;
  }
  return markdown;
}

test('a body that takes long to convert does not hold up other clients, and past the time limit is refused with 413 CONVERSION_TIMEOUT, changing nothing', async (t) => {
  const server = await serverWithConversionLimits(t, { timeoutMs: 2000 });
  const editor = hocuspocusClient(t, server.url, 'busy/editing');
  await waitFor(() => editor.settled(), { message: 'the editor is connected' });
  let answered = false;
  const big = contentClient(server, 'busy/big').post(slowMarkdown(), 'text/markdown').finally(() => {
    answered = true;
  });

  // The conversion runs off the event loop: the editor's updates keep being acknowledged while it lasts.
  let acknowledgedMeanwhile = 0;
  const text = editor.doc.getText('typed');
  while (!answered) {
    text.insert(text.length, 'x');
    await waitSettled([editor]);
    if (!answered) acknowledgedMeanwhile += 1;
  }
  const response = await big;
  const answer = (await response.json()) as ErrorJson;
  assert.equal(response.status, 413, JSON.stringify(answer));
  assert.equal(answer.error.code, 'CONVERSION_TIMEOUT');
  assert.match(answer.error.message, /longer than 2 s \(waiting for the converter included\); send it in smaller pieces \(mode=append\)/);
  t.diagnostic(`${acknowledgedMeanwhile} edits acknowledged one after another while the conversion ran`);
  assert.ok(acknowledgedMeanwhile >= 5, `only ${acknowledgedMeanwhile} edits were acknowledged while the conversion ran`);
  assert.deepEqual(await contentClient(server, 'busy/big').history(), [], 'nothing was logged');

  // A fresh worker takes the next request.
  await posted(await contentClient(server, 'busy/big').post('# Small\n', 'text/markdown'));
  assert.equal(await contentClient(server, 'busy/big').read('markdown'), '# Small\n');
});

test('past the conversions allowed to wait, a request is refused at once with 503 CONVERSION_QUEUE_FULL and Retry-After, changing nothing', async (t) => {
  const server = await serverWithConversionLimits(t, { timeoutMs: 600_000, maxQueued: 1 });
  const waiting = async () => Number(/^palimpsest_content_conversions_waiting(?:\{[^}]*\})? (\d+)/m.exec(await (await fetch(`${server.http}/metrics`)).text())?.[1]);
  const markdown = slowMarkdown();
  // One conversion runs (for minutes), one waits behind it (the first is sent to the worker as soon as it
  // is queued, so one waiting means both have arrived). Both are cut short when the server closes.
  for (const doc of ['queue/a', 'queue/b']) void contentClient(server, doc).post(markdown, 'text/markdown').catch(() => null);
  await waitFor(async () => (await waiting()) === 1, { message: 'the second conversion waits' });

  const refused = await contentClient(server, 'queue/c').post('# Small\n', 'text/markdown');
  const answer = (await refused.json()) as ErrorJson;
  assert.equal(refused.status, 503, JSON.stringify(answer));
  assert.equal(answer.error.code, 'CONVERSION_QUEUE_FULL');
  assert.equal(refused.headers.get('retry-after'), '600');
  assert.match(answer.error.message, /1 conversions are already waiting; try again in 600 s/);
  // A render waits for the converter too, and is refused alike; Yjs updates need no conversion and still go through.
  assert.equal((await contentClient(server, 'queue/c').get('format=markdown')).status, 503);
  const update = new Y.Doc();
  update.getText('t').insert(0, 'direct');
  const direct = await fetch(`${server.http}/api/documents/queue%2Fc/updates`, {
    method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: Y.encodeStateAsUpdate(update),
  });
  assert.equal(direct.status, 200, await direct.text());
  assert.deepEqual((await contentClient(server, 'queue/c').history()).length, 1, 'only the Yjs update was logged');
});
