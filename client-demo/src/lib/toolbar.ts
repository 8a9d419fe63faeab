// The formatting toolbar above the text. It follows the WAI-ARIA toolbar
// pattern: one tab stop, arrow keys move between buttons, and toggle buttons
// report their state with aria-pressed, refreshed on every transaction.

import type { Editor } from '@tiptap/core';
import { h, icon } from './dom.ts';

interface ToolbarItem {
  label: string;
  shortcut?: string;
  content: () => Node | string;
  run: (editor: Editor) => boolean;
  /** Toggle buttons say whether the selection already has the format. */
  isActive?: (editor: Editor) => boolean;
  isEnabled?: (editor: Editor) => boolean;
}

const mark = (text: string, className: string) => () => h('span', { class: `pal-glyph ${className}`, 'aria-hidden': 'true' }, text);

const GROUPS: ToolbarItem[][] = [
  [
    { label: 'Undo', shortcut: 'Mod-Z', content: () => icon('M9 14 4 9l5-5', 'M4 9h10.5a5.5 5.5 0 0 1 0 11H11'), run: (e) => e.chain().focus().undo().run(), isEnabled: (e) => e.can().undo() },
    { label: 'Redo', shortcut: 'Mod-Shift-Z', content: () => icon('m15 14 5-5-5-5', 'M20 9H9.5a5.5 5.5 0 0 0 0 11H13'), run: (e) => e.chain().focus().redo().run(), isEnabled: (e) => e.can().redo() },
  ],
  [
    { label: 'Heading 1', content: mark('H1', 'pal-glyph--heading'), run: (e) => e.chain().focus().toggleHeading({ level: 1 }).run(), isActive: (e) => e.isActive('heading', { level: 1 }) },
    { label: 'Heading 2', content: mark('H2', 'pal-glyph--heading'), run: (e) => e.chain().focus().toggleHeading({ level: 2 }).run(), isActive: (e) => e.isActive('heading', { level: 2 }) },
  ],
  [
    { label: 'Bold', shortcut: 'Mod-B', content: mark('B', 'pal-glyph--bold'), run: (e) => e.chain().focus().toggleBold().run(), isActive: (e) => e.isActive('bold') },
    { label: 'Italic', shortcut: 'Mod-I', content: mark('I', 'pal-glyph--italic'), run: (e) => e.chain().focus().toggleItalic().run(), isActive: (e) => e.isActive('italic') },
    { label: 'Underline', shortcut: 'Mod-U', content: mark('U', 'pal-glyph--underline'), run: (e) => e.chain().focus().toggleUnderline().run(), isActive: (e) => e.isActive('underline') },
    { label: 'Strikethrough', shortcut: 'Mod-Shift-S', content: mark('S', 'pal-glyph--strike'), run: (e) => e.chain().focus().toggleStrike().run(), isActive: (e) => e.isActive('strike') },
    { label: 'Inline code', shortcut: 'Mod-E', content: () => icon('m16 18 6-6-6-6', 'm8 6-6 6 6 6'), run: (e) => e.chain().focus().toggleCode().run(), isActive: (e) => e.isActive('code') },
  ],
  [
    { label: 'Bulleted list', content: () => icon('M9 6h11', 'M9 12h11', 'M9 18h11', 'M4 6h.01', 'M4 12h.01', 'M4 18h.01'), run: (e) => e.chain().focus().toggleBulletList().run(), isActive: (e) => e.isActive('bulletList') },
    { label: 'Numbered list', content: () => icon('M10 6h10', 'M10 12h10', 'M10 18h10', 'M4 4h1v5', 'M4 9h2', 'M6 19H4c0-1.5 2-2 2-3.5a1 1 0 0 0-2 0'), run: (e) => e.chain().focus().toggleOrderedList().run(), isActive: (e) => e.isActive('orderedList') },
    { label: 'Quote', content: mark('“', 'pal-glyph--quote'), run: (e) => e.chain().focus().toggleBlockquote().run(), isActive: (e) => e.isActive('blockquote') },
    { label: 'Code block', content: () => icon('M5 4h14a1 1 0 0 1 1 1v14a1 1 0 0 1-1 1H5a1 1 0 0 1-1-1V5a1 1 0 0 1 1-1z', 'm10 9-3 3 3 3', 'm14 9 3 3-3 3'), run: (e) => e.chain().focus().toggleCodeBlock().run(), isActive: (e) => e.isActive('codeBlock') },
  ],
];

function shortcutText(shortcut: string): string {
  const apple = /Mac|iPhone|iPad/.test(navigator.platform);
  return shortcut.replace('Mod', apple ? '⌘' : 'Ctrl').replaceAll('-', apple ? '' : '+');
}

export interface Toolbar {
  element: HTMLElement;
  destroy(): void;
}

export function createToolbar(editor: Editor): Toolbar {
  const element = h('div', { class: 'pal-toolbar', role: 'toolbar', 'aria-label': 'Formatting', 'aria-orientation': 'horizontal' });
  const buttons: { button: HTMLButtonElement; item: ToolbarItem }[] = [];

  for (const [index, group] of GROUPS.entries()) {
    if (index > 0) element.append(h('span', { class: 'pal-toolbar__divider', 'aria-hidden': 'true' }));
    for (const item of group) {
      const title = item.shortcut ? `${item.label} (${shortcutText(item.shortcut)})` : item.label;
      const button = h('button', {
        type: 'button',
        class: 'pal-toolbar__button',
        'aria-label': item.label,
        'aria-keyshortcuts': item.shortcut?.replace('Mod', 'Control'),
        'aria-pressed': item.isActive ? 'false' : undefined,
        title,
        tabindex: buttons.length === 0 ? 0 : -1,
      }, item.content());
      // Keep the text selection where it is: a mousedown on the button would
      // otherwise blur the editor before the command runs.
      button.addEventListener('mousedown', (event) => event.preventDefault());
      button.addEventListener('click', () => item.run(editor));
      buttons.push({ button, item });
      element.append(button);
    }
  }

  const focusButton = (index: number): void => {
    const count = buttons.length;
    const next = buttons[((index % count) + count) % count]?.button;
    if (!next) return;
    for (const { button } of buttons) button.tabIndex = button === next ? 0 : -1;
    next.focus();
  };

  element.addEventListener('keydown', (event) => {
    const current = buttons.findIndex(({ button }) => button === document.activeElement);
    if (current < 0) return;
    const moves: Record<string, number> = { ArrowRight: current + 1, ArrowLeft: current - 1, Home: 0, End: buttons.length - 1 };
    const target = moves[event.key];
    if (target === undefined) return;
    event.preventDefault();
    focusButton(target);
  });

  const refresh = (): void => {
    for (const { button, item } of buttons) {
      if (item.isActive) button.setAttribute('aria-pressed', String(item.isActive(editor)));
      // aria-disabled rather than disabled: the button stays reachable with the
      // arrow keys, so the toolbar's single tab stop never lands on nothing.
      if (item.isEnabled) button.setAttribute('aria-disabled', String(!item.isEnabled(editor)));
    }
  };
  editor.on('transaction', refresh);
  refresh();

  return {
    element,
    destroy() {
      editor.off('transaction', refresh);
    },
  };
}
