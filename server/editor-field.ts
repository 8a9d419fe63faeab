// The Yjs root type the demo editor writes to (`ydoc.getXmlFragment('default')`).
// Its own module so that the content API can name it without loading Tiptap;
// editor-schema.ts passes it on to the editor. Changing it orphans every
// stored document.

export const EDITOR_FIELD = 'default';
