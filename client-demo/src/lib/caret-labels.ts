// Keeps other people's caret name labels inside the editor. A label hangs to
// the right of its caret; near the right edge (a phone, a narrow embed) it
// would be cut off by the editor's rounded card, so there it hangs to the left
// instead. Which side fits depends on layout, hence a measurement after every
// view update (carets are redrawn on each awareness change) and on resize.

import { Extension } from '@tiptap/core';
import { Plugin, PluginKey } from '@tiptap/pm/state';
import type { EditorView } from '@tiptap/pm/view';

const LABEL = '.collaboration-carets__label';
const FLIPPED = 'collaboration-carets__label--start';

/** The right edge labels must stay left of: the editor's card (it clips), and the window. */
function rightLimit(view: EditorView): number {
  const card = view.dom.closest('.pal-editor') ?? view.dom;
  return Math.min(card.getBoundingClientRect().right, document.documentElement.clientWidth);
}

function placeLabels(view: EditorView): void {
  const labels = view.dom.querySelectorAll<HTMLElement>(LABEL);
  if (labels.length === 0) return;
  const limit = rightLimit(view);
  for (const label of labels) {
    const caret = label.parentElement;
    if (!caret) continue;
    // Measured from the caret, so the answer does not depend on the side the
    // label hangs on now (which would make it flip back and forth).
    const wouldEnd = caret.getBoundingClientRect().left + label.offsetWidth;
    label.classList.toggle(FLIPPED, wouldEnd > limit - 2);
  }
}

export const CaretLabelsInside = Extension.create({
  name: 'palimpsestCaretLabelsInside',
  addProseMirrorPlugins() {
    return [new Plugin({
      key: new PluginKey('palimpsestCaretLabelsInside'),
      view(view) {
        const resizes = typeof ResizeObserver === 'undefined' ? null : new ResizeObserver(() => placeLabels(view));
        resizes?.observe(view.dom);
        placeLabels(view);
        return {
          update: () => placeLabels(view),
          destroy: () => resizes?.disconnect(),
        };
      },
    })];
  },
});
