// Conversions between a Yjs document's editor field and the formats of the
// content API (content-api.ts): ProseMirror JSON, HTML, Markdown and plain
// text. Everything goes through the editor's own schema (editor-schema.ts)
// and Tiptap's packages: @tiptap/y-tiptap between Y.XmlFragment and
// ProseMirror, @tiptap/html (its Node entry, on happy-dom) for HTML,
// @tiptap/markdown for Markdown. Nothing here does I/O.
//
// It runs in a worker thread (content-worker.ts), never on the server's event
// loop: the conversions cost seconds for large bodies (@tiptap/markdown's
// parser grows faster than the text), and happy-dom and the Tiptap packages
// take about a second to load, which a server that never serves content
// should not pay at start. What crosses the thread boundary is plain data:
// Yjs updates, strings and ProseMirror JSON.

import { getSchema, getTextSerializersFromSchema, type JSONContent } from '@tiptap/core';
import { generateHTML, generateJSON } from '@tiptap/html/server';
import { MarkdownManager } from '@tiptap/markdown';
import type { Node as ProseMirrorNode, Schema } from '@tiptap/pm/model';
import { prosemirrorToYXmlFragment, yXmlFragmentToProseMirrorRootNode } from '@tiptap/y-tiptap';
import * as Y from 'yjs';
import { editorSchemaExtensions } from './editor-schema.js';

export type ContentFormat = 'text' | 'html' | 'markdown' | 'json';

/** Why a body cannot become content; content-api.ts answers it with a 4xx. */
export class ContentError extends Error {
  constructor(readonly code: 'MALFORMED_CONTENT' | 'SCHEMA_MISMATCH' | 'FIELD_TYPE_MISMATCH', message: string) {
    super(message);
    this.name = 'ContentError';
  }
}

/** What a root type of a document holds, as far as the content API is concerned. */
export type FieldContent =
  | { kind: 'xml'; node: ProseMirrorNode }
  | { kind: 'text'; text: string }
  /** A Y.Map or Y.Array: no format shows it. */
  | { kind: 'other' };

/** A field rendered in a format: `body` is set for an XML fragment, `text` for a Y.Text. */
export type RenderedField =
  | { kind: 'xml'; body: string | JSONContent }
  | { kind: 'text'; text: string }
  | { kind: 'other' };

const extensions = editorSchemaExtensions();
const schema: Schema = getSchema(extensions);
const textSerializers = getTextSerializersFromSchema(schema);
const markdown = new MarkdownManager({ extensions });

/**
 * What `field` holds in `ydoc`. Root types come back untyped from an update
 * until asked for by kind, so the first item's content tells which kind it is;
 * an absent or empty field reads as an empty editor document.
 */
export function readField(ydoc: Y.Doc, field: string): FieldContent {
  const kind = fieldKind(ydoc, field);
  if (kind === 'text') return { kind, text: ydoc.getText(field).toString() };
  if (kind === 'other') return { kind };
  // Nodes the schema does not know are left out (as an editor opening the document would show it).
  return { kind: 'xml', node: yXmlFragmentToProseMirrorRootNode(ydoc.getXmlFragment(field), schema) };
}

function fieldKind(ydoc: Y.Doc, field: string): 'xml' | 'text' | 'other' | 'empty' {
  const type = ydoc.share.get(field);
  if (type === undefined) return 'empty';
  if (type instanceof Y.XmlFragment) return 'xml';
  if (type instanceof Y.Text) return 'text';
  if (type instanceof Y.Map || type instanceof Y.Array) return 'other';
  // Deleted items keep no content (garbage collection leaves ContentDeleted): look at the first live one.
  let first = type._start;
  while (first !== null && first.deleted) first = first.right;
  if (first === null) return [...type._map.values()].some((entry) => !entry.deleted) ? 'other' : 'empty';
  if (first.content instanceof Y.ContentType) return 'xml';
  if (first.content instanceof Y.ContentString || first.content instanceof Y.ContentFormat || first.content instanceof Y.ContentEmbed) return 'text';
  return 'other';
}

/** `field` of the document in state `state` (a Yjs update), rendered in `format` when it is an XML fragment. */
export function renderField(state: Uint8Array, field: string, format: ContentFormat): RenderedField {
  const ydoc = new Y.Doc();
  try {
    Y.applyUpdate(ydoc, state);
    const content = readField(ydoc, field);
    return content.kind === 'xml' ? { kind: 'xml', body: renderNode(content.node, format) } : content;
  } finally {
    ydoc.destroy();
  }
}

/** `node` (an editor document) in `format`: a string, or ProseMirror JSON for `json`. */
export function renderNode(node: ProseMirrorNode, format: ContentFormat): string | JSONContent {
  const json = node.toJSON() as JSONContent;
  // An empty fragment is a doc without children; say so explicitly rather than leaving `content` out.
  json.content ??= [];
  switch (format) {
    case 'json': return json;
    // One blank line between blocks (a list item's paragraph is one block, not three); a hard break is a newline.
    case 'text': return node.textBetween(0, node.content.size, '\n\n', (leaf) => textSerializers[leaf.type.name]?.({
      node: leaf, pos: 0, parent: node, index: 0, range: { from: 0, to: 0 },
    }) ?? '');
    case 'html': return node.childCount === 0 ? '' : generateHTML(json, extensions);
    // A Markdown file ends with a newline, as editors write them.
    case 'markdown': return node.childCount === 0 ? '' : `${markdown.serialize(json).replace(/\n*$/, '')}\n`;
  }
}

/**
 * Reads a request body as an editor document, answered as ProseMirror JSON
 * the schema has checked. Throws ContentError naming what is wrong: JSON that
 * does not parse, or content the schema does not allow (an unknown node or
 * mark, a node where its parent cannot hold it).
 */
export function parseContent(body: string, format: Exclude<ContentFormat, 'text'>): JSONContent {
  return parseNode(body, format).toJSON() as JSONContent;
}

function parseNode(body: string, format: Exclude<ContentFormat, 'text'>): ProseMirrorNode {
  let json: unknown;
  switch (format) {
    case 'json':
      try {
        json = JSON.parse(body);
      } catch (error) {
        throw new ContentError('MALFORMED_CONTENT', `the body is not valid JSON: ${(error as Error).message}`);
      }
      break;
    // Both parsers are lenient, like a browser: whatever they cannot place becomes text or is dropped.
    case 'html':
      json = generateJSON(body, extensions);
      break;
    case 'markdown':
      json = markdown.parse(body);
      break;
  }
  return toEditorDocument(json);
}

function toEditorDocument(json: unknown): ProseMirrorNode {
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw new ContentError('SCHEMA_MISMATCH', 'the body must be a ProseMirror document: {"type": "doc", "content": [ … ]}');
  }
  const top = (json as { type?: unknown }).type;
  if (top !== schema.topNodeType.name) {
    throw new ContentError('SCHEMA_MISMATCH', `the top node must be of type "${schema.topNodeType.name}" (got ${JSON.stringify(top ?? null)})`);
  }
  let node: ProseMirrorNode;
  try {
    node = schema.nodeFromJSON(json);
    // An empty document is allowed: it stands for "no content" (the editor shows one empty paragraph).
    if (node.childCount > 0) node.check();
  } catch (error) {
    throw new ContentError('SCHEMA_MISMATCH', `the document does not fit the editor's schema: ${(error as Error).message}`);
  }
  return node;
}

/**
 * The Yjs update that makes `field` of a document in state `state` hold
 * `incoming` (replace) or its current content followed by `incoming`
 * (append). The change is the smallest y-tiptap finds (what an editor would
 * send for the same edit): unchanged blocks keep their items, and so their
 * authorship and other people's carets. Null when nothing would change.
 */
export function contentUpdate(state: Uint8Array, field: string, content: JSONContent, mode: 'replace' | 'append'): Uint8Array | null {
  const incoming = toEditorDocument(content);
  const scratch = new Y.Doc();
  try {
    Y.applyUpdate(scratch, state);
    const kind = fieldKind(scratch, field);
    if (kind === 'text' || kind === 'other') {
      throw new ContentError('FIELD_TYPE_MISMATCH',
        `field "${field}" holds a ${kind === 'text' ? 'Y.Text' : 'Y.Map or Y.Array'}, not the editor's Y.XmlFragment; content can only be written to an XML fragment`);
    }
    const fragment = scratch.getXmlFragment(field);
    const changes: Uint8Array[] = [];
    scratch.on('update', (update: Uint8Array) => changes.push(update));
    let target = incoming;
    if (mode === 'append') {
      const current = yXmlFragmentToProseMirrorRootNode(fragment, schema);
      // A document that is only empty paragraphs (a new editor's) takes the content as it is.
      if (current.textContent !== '' || current.content.content.some((child) => !child.isTextblock)) {
        target = schema.topNodeType.create(null, current.content.append(incoming.content));
      }
    }
    prosemirrorToYXmlFragment(target, fragment);
    return changes.length === 0 ? null : Y.mergeUpdates(changes);
  } finally {
    scratch.destroy();
  }
}
