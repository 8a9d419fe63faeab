// The editor's document model, defined once: the demo editor
// (client-demo/src/lib/mount.ts) builds its Tiptap editor from these
// extensions, adding collaboration and carets on top, and the content API
// (content-formats.ts) builds its ProseMirror schema, HTML and Markdown from
// the same list. A node or mark dropped here is dropped from stored documents
// the next time an editor opens them, so only ever add.
//
// Keep this module free of Node APIs: the browser bundle imports it as it is.

import type { AnyExtension } from '@tiptap/core';
import StarterKit from '@tiptap/starter-kit';

export { EDITOR_FIELD } from './editor-field.js';

/** The extensions that make up the schema (headings, lists, bold, italic, code blocks, links, …). */
export function editorSchemaExtensions(): AnyExtension[] {
  // Undo/redo comes from the Collaboration extension (Yjs UndoManager) in the
  // editor, which only undoes the user's own changes; ProseMirror's history
  // would undo other people's edits too. Neither adds to the schema.
  return [StarterKit.configure({ undoRedo: false, link: { openOnClick: false } })];
}
