// Colour by author on the live, editable text: ProseMirror decorations over
// each run of text, coloured by who created its Yjs items. Who a Yjs client id
// is comes from outside (the History panel reads it from the server and from
// the people connected now); the item ids are read from the document itself,
// so text typed while the colours are on is coloured as it appears.

import { Extension, type Editor } from '@tiptap/core';
import type { Node as ProseMirrorNode, Schema } from '@tiptap/pm/model';
import { Plugin, PluginKey, type EditorState } from '@tiptap/pm/state';
import { Decoration, DecorationSet } from '@tiptap/pm/view';
import * as Y from 'yjs';
import { colourForName } from './identity.ts';

/** Client id → the name its text shows under; null turns the colours off. */
export type ClientNames = Map<number, string> | null;

interface ColourState {
  names: ClientNames;
  decorations: DecorationSet;
}

const key = new PluginKey<ColourState>('palimpsestAuthorColours');
const UNKNOWN = 'Unknown';

/** The names the colours show now (for a legend), in order of appearance. */
export function coloursShown(editor: Editor): string[] {
  const state = key.getState(editor.state);
  if (state === undefined || state.names === null) return [];
  return [...new Set(state.decorations.find().map((d) => (d.spec as { author: string }).author))];
}

export function setClientNames(editor: Editor, names: ClientNames): void {
  editor.view.dispatch(editor.state.tr.setMeta(key, names));
}

/**
 * The decorations for `doc` from the Yjs fragment it mirrors: y-prosemirror
 * renders each XmlElement as a node of that name and each XmlText as its
 * text, in order, so positions follow from the Yjs structure alone.
 */
function decorate(doc: ProseMirrorNode, schema: Schema, fragment: Y.XmlFragment, names: Map<number, string>): DecorationSet {
  const decorations: Decoration[] = [];
  const limit = doc.content.size;
  const nameOf = (client: number): string => names.get(client) ?? UNKNOWN;
  const sizeOf = (type: Y.XmlElement | Y.XmlText): number => {
    if (type instanceof Y.XmlText) {
      let size = 0;
      for (let item = type._start; item !== null; item = item.right) if (!item.deleted && item.countable) size += item.length;
      return size;
    }
    if (schema.nodes[type.nodeName]?.isLeaf === true) return 1;
    let size = 2;
    for (let item = type._start; item !== null; item = item.right) {
      if (!item.deleted && item.content instanceof Y.ContentType) size += sizeOf(item.content.type as Y.XmlElement | Y.XmlText);
    }
    return size;
  };
  const walk = (type: Y.XmlFragment | Y.XmlElement, start: number): void => {
    let pos = start;
    for (let item = type._start; item !== null; item = item.right) {
      if (item.deleted || !(item.content instanceof Y.ContentType)) continue;
      const child = item.content.type;
      if (child instanceof Y.XmlText) {
        let run: { from: number; to: number; author: string } | null = null;
        for (let piece = child._start; piece !== null; piece = piece.right) {
          if (piece.deleted || !piece.countable) continue;
          const author = nameOf(piece.id.client);
          if (run !== null && run.author === author && run.to === pos) run.to += piece.length;
          else {
            if (run !== null) decorations.push(inline(run));
            run = { from: pos, to: pos + piece.length, author };
          }
          pos += piece.length;
        }
        if (run !== null) decorations.push(inline(run));
      } else if (child instanceof Y.XmlElement) {
        if (schema.nodes[child.nodeName]?.isLeaf !== true) walk(child, pos + 1);
        pos += sizeOf(child);
      }
    }
  };
  const inline = (run: { from: number; to: number; author: string }): Decoration => {
    const colour = colourForName(run.author);
    return Decoration.inline(run.from, run.to, {
      class: 'pal-author', 'data-author': run.author,
      style: `background-color: ${colour}2e; box-shadow: inset 0 -2px 0 ${colour}`,
    }, { author: run.author });
  };
  walk(fragment, 0);
  // Mid-way through an edit the two may briefly disagree; such runs wait for the next pass.
  return DecorationSet.create(doc, decorations.filter((d) => d.from < d.to && d.to <= limit));
}

export function authorColours(fragment: Y.XmlFragment): Extension {
  const compute = (state: EditorState, names: ClientNames): ColourState => ({
    names, decorations: names === null ? DecorationSet.empty : decorate(state.doc, state.schema, fragment, names),
  });
  return Extension.create({
    name: 'palimpsestAuthorColours',
    addProseMirrorPlugins() {
      return [new Plugin<ColourState>({
        key,
        state: {
          init: () => ({ names: null, decorations: DecorationSet.empty }),
          apply(tr, previous, _old, state) {
            const names = tr.getMeta(key) as ClientNames | undefined;
            if (names !== undefined) return compute(state, names);
            if (previous.names === null || !tr.docChanged) return previous;
            // A local edit reaches the Yjs document only after this transaction: follow it for now, recompute once it has.
            return { names: previous.names, decorations: previous.decorations.map(tr.mapping, tr.doc) };
          },
        },
        view(view) {
          let scheduled = false;
          // Every change to the Yjs document (local once written to it, remote as it arrives) recomputes the colours,
          // after the current update has finished.
          const fragmentOnChange = (): void => {
            if (scheduled || key.getState(view.state)?.names == null) return;
            scheduled = true;
            setTimeout(() => {
              scheduled = false;
              const names = key.getState(view.state)?.names;
              if (names != null && !view.isDestroyed) view.dispatch(view.state.tr.setMeta(key, names));
            }, 0);
          };
          fragment.observeDeep(fragmentOnChange);
          return { destroy: () => fragment.unobserveDeep(fragmentOnChange) };
        },
        props: {
          decorations: (state) => key.getState(state)?.decorations ?? DecorationSet.empty,
        },
      })];
    },
  });
}
