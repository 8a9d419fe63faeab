// The demo page served at "/": picks the document from ?doc= (inventing one
// when absent, which reaches the server only once someone writes in it), the
// display name from ?user=, a JWT from ?token=, mounts the embeddable editor,
// and exposes it as window.palimpsest for browser tests.

import {
  documentNameProblem,
  type MountedEditor,
  mountEditor,
  randomDisplayName,
  randomDocumentName,
} from './lib/index.ts';
import './demo.css';

declare global {
  interface Window {
    /** Test hook: the live provider, Y.Doc and Tiptap editor of this page. */
    palimpsest?: Pick<MountedEditor, 'provider' | 'ydoc' | 'editor'> & { mounted: MountedEditor };
  }
}

/**
 * Names this tab invented and nobody has written in yet (per tab, like the
 * invention itself), so that reloading such a page still creates nothing.
 */
const unwritten = {
  key: (name: string) => `palimpsest:unwritten:${name}`,
  has(name: string): boolean {
    return sessionStorage.getItem(this.key(name)) !== null;
  },
  add(name: string): void {
    sessionStorage.setItem(this.key(name), '1');
  },
  delete(name: string): void {
    sessionStorage.removeItem(this.key(name));
  },
};

/** The document named in the address bar, put there first if it is missing. */
function documentFromAddress(): { name: string; invented: boolean } {
  const url = new URL(window.location.href);
  const named = url.searchParams.get('doc');
  if (named) return { name: named, invented: unwritten.has(named) };
  const invented = randomDocumentName();
  unwritten.add(invented);
  url.searchParams.set('doc', invented);
  // replaceState, not pushState: "Back" should not lead to a page that invents yet another document.
  history.replaceState(history.state, '', url);
  return { name: invented, invented: true };
}

/** A name for this tab: ?user= wins; otherwise one invented name kept for the tab's lifetime. */
function displayName(params: URLSearchParams): string {
  const given = params.get('user')?.trim();
  if (given) return given;
  const key = 'palimpsest:display-name';
  // Per tab (sessionStorage), so two windows side by side show as two people.
  const remembered = sessionStorage.getItem(key);
  if (remembered) return remembered;
  const invented = randomDisplayName();
  sessionStorage.setItem(key, invented);
  return invented;
}

function showProblem(container: HTMLElement, message: string): void {
  const box = document.createElement('div');
  box.className = 'demo-problem';
  box.setAttribute('role', 'alert');
  const heading = document.createElement('h2');
  heading.textContent = 'This document cannot be opened';
  const text = document.createElement('p');
  text.textContent = message;
  const link = document.createElement('a');
  link.href = '/';
  link.textContent = 'Start a new document';
  box.append(heading, text, link);
  container.replaceChildren(box);
}

function setUpShareButton(button: HTMLButtonElement, feedback: HTMLElement, beforeSharing: () => void): void {
  button.addEventListener('click', () => {
    beforeSharing();
    // The link without ?user= and ?token=: whoever opens it is someone else.
    const link = new URL(window.location.href);
    link.searchParams.delete('user');
    link.searchParams.delete('token');
    navigator.clipboard.writeText(link.href).then(
      () => { feedback.textContent = 'Link copied — open it in another window'; },
      (error: unknown) => {
        console.warn('[palimpsest] clipboard refused the share link', error);
        feedback.textContent = link.href;
      },
    );
    window.setTimeout(() => { feedback.textContent = ''; }, 4000);
  });
}

function start(): void {
  const container = document.getElementById('editor-root');
  const share = document.getElementById('share-link');
  const shareFeedback = document.getElementById('share-feedback');
  if (!container || !(share instanceof HTMLButtonElement) || !shareFeedback) {
    throw new Error('index.html is missing #editor-root, #share-link or #share-feedback');
  }
  const params = new URLSearchParams(window.location.search);
  const { name: documentName, invented } = documentFromAddress();
  const problem = documentNameProblem(documentName);
  if (problem) {
    setUpShareButton(share, shareFeedback, () => {});
    showProblem(container, problem);
    return;
  }

  document.title = `${documentName} · Palimpsest`;
  const mounted = mountEditor(container, {
    document: documentName,
    url: params.get('server') ?? undefined,
    token: params.get('token') ?? undefined,
    user: { name: displayName(params) },
    offline: params.has('offline'),
    // A page nobody writes in must not leave a document behind on the server.
    deferUntilFirstEdit: invented,
  });
  if (invented) mounted.ydoc.once('update', () => unwritten.delete(documentName));
  // Whoever opens a shared link joins at once, so this page must be there too.
  setUpShareButton(share, shareFeedback, () => {
    mounted.openOnServer();
    unwritten.delete(documentName);
  });
  window.palimpsest = { provider: mounted.provider, ydoc: mounted.ydoc, editor: mounted.editor, mounted };
}

start();
