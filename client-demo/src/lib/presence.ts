// The people present in a document, read from Yjs awareness: each client
// publishes `{ user: { name, color } }` (set by the collaboration-caret
// extension). The list is rebuilt on every awareness change; it is short.

import type { HocuspocusProvider } from '@hocuspocus/provider';
import { h } from './dom.ts';
import { colourForName, initials, safeColour } from './identity.ts';

export interface PresentUser {
  clientId: number;
  name: string;
  color: string;
  isSelf: boolean;
}

/** Everyone with a name in awareness, the local user first, then by name. */
export function presentUsers(provider: HocuspocusProvider): PresentUser[] {
  const awareness = provider.awareness;
  if (!awareness) return [];
  const users: PresentUser[] = [];
  for (const [clientId, state] of awareness.getStates()) {
    const user: unknown = state['user'];
    if (typeof user !== 'object' || user === null) continue;
    const { name, color } = user as { name?: unknown; color?: unknown };
    if (typeof name !== 'string' || name.length === 0) continue;
    users.push({ clientId, name, color: safeColour(color, colourForName(name)), isSelf: clientId === awareness.clientID });
  }
  return users.sort((a, b) => Number(b.isSelf) - Number(a.isSelf) || a.name.localeCompare(b.name) || a.clientId - b.clientId);
}

export interface PresenceList {
  element: HTMLElement;
  destroy(): void;
}

export function createPresenceList(provider: HocuspocusProvider): PresenceList {
  const list = h('ul', { class: 'pal-presence__list', 'data-testid': 'presence-list', 'aria-label': 'People in this document' });
  const summary = h('span', { class: 'pal-visually-hidden', 'aria-live': 'polite' });
  const element = h('div', { class: 'pal-presence' }, list, summary);

  // Entries are kept per client and only rebuilt when that person's name or
  // colour changes: awareness changes on every caret move, and rebuilding
  // would restart the arrival animation and churn the DOM while people type.
  const entries = new Map<number, { item: HTMLLIElement; signature: string }>();

  const entryFor = (user: PresentUser): HTMLLIElement => {
    const signature = `${user.name}\u0000${user.color}\u0000${user.isSelf}`;
    const existing = entries.get(user.clientId);
    if (existing?.signature === signature) return existing.item;
    const label = user.isSelf ? `${user.name} (you)` : user.name;
    const item = h('li', {
      class: `pal-presence__user${user.isSelf ? ' pal-presence__user--self' : ''}`,
      'data-testid': 'presence-user',
      'data-name': user.name,
      'data-client-id': user.clientId,
      title: label,
      style: `--pal-user-color: ${user.color}`,
    },
    h('span', { class: 'pal-presence__avatar', 'aria-hidden': 'true' }, initials(user.name)),
    h('span', { class: 'pal-presence__name' }, user.name, user.isSelf ? h('span', { class: 'pal-presence__you' }, ' (you)') : null));
    entries.set(user.clientId, { item, signature });
    return item;
  };

  let lastSummary = '';
  const render = (): void => {
    const users = presentUsers(provider);
    const present = new Set(users.map((user) => user.clientId));
    for (const clientId of entries.keys()) if (!present.has(clientId)) entries.delete(clientId);
    const items = users.map(entryFor);
    // Reorder or replace only when something actually changed.
    if (items.length !== list.children.length || items.some((item, index) => list.children[index] !== item)) {
      list.replaceChildren(...items);
    }
    const others = users.filter((user) => !user.isSelf).length;
    // Announced politely, and only the count: names are in the list.
    const summaryText = others === 0 ? 'Only you are here.' : `${others} other ${others === 1 ? 'person' : 'people'} here.`;
    if (summaryText !== lastSummary) summary.textContent = lastSummary = summaryText;
  };

  provider.on('awarenessChange', render);
  render();

  return {
    element,
    destroy() {
      provider.off('awarenessChange', render);
    },
  };
}
