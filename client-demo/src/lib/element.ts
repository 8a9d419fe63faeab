// <palimpsest-editor>: mountEditor as a custom element, for pages that would
// rather write HTML than JavaScript. Attributes: document (required), url,
// user, color, token, offline (boolean), history ("off" hides the History panel). Renders into light DOM so the page's
// own fonts apply and tests can find the data-testid hooks with plain selectors.

import { type MountedEditor, mountEditor } from './mount.ts';

const REMOUNT_ATTRIBUTES = ['document', 'url', 'user', 'color', 'token', 'history'];

export class PalimpsestEditorElement extends HTMLElement {
  static readonly observedAttributes = [...REMOUNT_ATTRIBUTES, 'offline'];

  #mounted: MountedEditor | null = null;
  /** The attributes the current mount (or failed mount attempt) was made from. */
  #mountedFrom: string | null = null;
  #remountScheduled = false;

  /** The live editor, or null while the element is not in the page. */
  get mounted(): MountedEditor | null {
    return this.#mounted;
  }

  get editor() { return this.#mounted?.editor ?? null; }
  get provider() { return this.#mounted?.provider ?? null; }
  get ydoc() { return this.#mounted?.ydoc ?? null; }

  connectedCallback(): void {
    this.#mount();
  }

  disconnectedCallback(): void {
    this.#unmount();
  }

  attributeChangedCallback(name: string, oldValue: string | null, newValue: string | null): void {
    if (!this.isConnected || oldValue === newValue) return;
    if (name === 'offline') {
      this.#mounted?.setOffline(newValue !== null);
      return;
    }
    // Several attributes often change together (framework re-renders); one
    // remount after the current task covers them all.
    if (this.#remountScheduled) return;
    this.#remountScheduled = true;
    queueMicrotask(() => {
      this.#remountScheduled = false;
      // When the element is upgraded (the script runs after the parser made
      // it), every attribute reports a change just before connectedCallback
      // mounts with those very values: remounting then would open a second
      // WebSocket and abort the first one before it connects.
      if (!this.isConnected || this.#remountAttributes() === this.#mountedFrom) return;
      this.#unmount();
      this.#mount();
    });
  }

  #remountAttributes(): string {
    return JSON.stringify(REMOUNT_ATTRIBUTES.map((name) => this.getAttribute(name)));
  }

  #mount(): void {
    if (this.#mounted) return;
    this.#mountedFrom = this.#remountAttributes();
    const documentName = this.getAttribute('document');
    if (!documentName) {
      this.textContent = 'palimpsest-editor: the "document" attribute is required.';
      return;
    }
    const userName = this.getAttribute('user');
    try {
      this.replaceChildren();
      this.#mounted = mountEditor(this, {
        document: documentName,
        url: this.getAttribute('url') ?? undefined,
        token: this.getAttribute('token') ?? undefined,
        user: userName ? { name: userName, color: this.getAttribute('color') ?? undefined } : undefined,
        offline: this.hasAttribute('offline'),
        history: this.getAttribute('history') !== 'off',
      });
    } catch (error) {
      // Shown in place rather than only thrown: a custom element has no caller to catch it.
      this.textContent = `palimpsest-editor: ${error instanceof Error ? error.message : String(error)}`;
      console.error('[palimpsest] could not mount <palimpsest-editor>', error);
      return;
    }
    this.dispatchEvent(new CustomEvent('palimpsest-ready', { detail: this.#mounted, bubbles: true }));
  }

  #unmount(): void {
    this.#mounted?.destroy();
    this.#mounted = null;
    this.#mountedFrom = null;
  }
}

/** Registers the element (once) under `tagName`; safe to call more than once. */
export function definePalimpsestEditor(tagName = 'palimpsest-editor'): void {
  if (customElements.get(tagName)) return;
  // A fresh subclass per tag name: one constructor cannot be defined twice.
  customElements.define(tagName, class extends PalimpsestEditorElement {});
}
