// Keeps your caret where you left it when someone else types into the empty
// paragraph (or heading, list item…) that holds it. The Yjs binding under
// @tiptap/extension-collaboration (@tiptap/y-tiptap) saves the selection as
// Yjs relative positions before each remote change and restores it after.
// For a caret in an empty textblock that goes wrong twice:
//  - it is saved as "the end of that block" (no item, assoc 0), which after
//    the first remote character resolves behind it; the next save anchors the
//    caret to that character, so the rest of the word flows in after the caret
//    and the caret ends up inside it ("G|race writes");
//  - its fallback for moved blocks treats any change of the caret block's text
//    as a misresolved position and searches the new document for a block with
//    the old text: for an empty block, the next empty block, elsewhere.
// Such a caret is saved here as "the start of that block" instead (assoc -1,
// the side y-tiptap uses for carets inside text: what others insert at your
// caret goes after it), and put back there after each remote change.

import { Extension } from '@tiptap/core';
import { type EditorState, Plugin, PluginKey, TextSelection } from '@tiptap/pm/state';
import { absolutePositionToRelativePosition, relativePositionToAbsolutePosition, ySyncPluginKey } from '@tiptap/y-tiptap';
import * as Y from 'yjs';

/** What y-tiptap keeps in its sync plugin's state and that is needed here. */
interface SyncState {
  doc: Y.Doc;
  type: Y.XmlFragment;
  binding: { mapping: Map<Y.AbstractType<unknown>, unknown> } | null;
}

function syncStateOf(state: EditorState): SyncState | null {
  const sync = ySyncPluginKey.getState(state) as SyncState | undefined;
  return sync?.binding ? sync : null;
}

/**
 * The start of the empty textblock holding a collapsed caret, as a Yjs
 * relative position; null when the caret is elsewhere, or the block is not
 * in the Yjs document yet (then y-tiptap's own handling is right).
 */
function caretInEmptyBlock(state: EditorState, sync: SyncState): Y.RelativePosition | null {
  const { selection } = state;
  if (!(selection instanceof TextSelection) || !selection.empty) return null;
  const { parent } = selection.$head;
  if (!parent.isTextblock || parent.content.size !== 0) return null;
  const saved = absolutePositionToRelativePosition(selection.head, sync.type, sync.binding!.mapping as never) as Y.RelativePosition;
  const found = Y.createAbsolutePositionFromRelativePosition(saved, sync.doc);
  if (found === null || !(found.type instanceof Y.XmlElement) || found.type.length !== 0) return null;
  return Y.createRelativePositionFromTypeIndex(found.type, 0, -1);
}

function isRemoteChange(transaction: { getMeta(key: PluginKey): unknown }): boolean {
  const meta = transaction.getMeta(ySyncPluginKey) as { isChangeOrigin?: boolean } | undefined;
  return meta?.isChangeOrigin === true;
}

function caretPlugin(): Plugin {
  // Set from just before a Yjs transaction until just after it: remote
  // changes reach ProseMirror from the binding's observer, in between.
  let saved: Y.RelativePosition | null = null;

  return new Plugin({
    key: new PluginKey('palimpsestCaretInEmptyBlock'),
    view(view) {
      const sync = syncStateOf(view.state);
      if (sync === null) return {};
      const ydoc = sync.doc;
      const ydocBeforeAllTransactions = (): void => {
        const current = syncStateOf(view.state);
        saved = current === null ? null : caretInEmptyBlock(view.state, current);
      };
      const ydocAfterAllTransactions = (): void => {
        saved = null;
      };
      ydoc.on('beforeAllTransactions', ydocBeforeAllTransactions);
      ydoc.on('afterAllTransactions', ydocAfterAllTransactions);
      return {
        destroy() {
          ydoc.off('beforeAllTransactions', ydocBeforeAllTransactions);
          ydoc.off('afterAllTransactions', ydocAfterAllTransactions);
          saved = null;
        },
      };
    },
    appendTransaction(transactions, _oldState, state) {
      if (saved === null || !transactions.some(isRemoteChange)) return null;
      const sync = syncStateOf(state);
      if (sync === null) return null;
      // The binding has rebuilt its mapping for the new document by now.
      const pos = relativePositionToAbsolutePosition(sync.doc, sync.type, saved, sync.binding!.mapping as never);
      if (pos === null || pos < 0 || pos > state.doc.content.size) return null;
      if (!state.doc.resolve(pos).parent.isTextblock) return null;
      if (state.selection.empty && state.selection.head === pos) return null;
      return state.tr.setSelection(TextSelection.create(state.doc, pos)).setMeta('addToHistory', false);
    },
  });
}

/** Add after Collaboration: see the module comment. */
export const CaretInEmptyBlock = Extension.create({
  name: 'palimpsestCaretInEmptyBlock',
  addProseMirrorPlugins() {
    return [caretPlugin()];
  },
});
