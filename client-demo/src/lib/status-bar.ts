// The status bar under the text: is the server reachable, how many local
// changes it has not yet acknowledged (an acknowledgement means the change is
// in the server's durable log), and the "Work offline" switch.

import type { Connection, ConnectionState } from './connection.ts';
import { h } from './dom.ts';

const DETAIL: Record<ConnectionState, string> = {
  connected: 'Live',
  connecting: 'Reaching the server…',
  offline: 'Edits are kept on this device',
  new: 'Nothing is stored until you write',
};

export interface StatusBar {
  element: HTMLElement;
  destroy(): void;
}

export function createStatusBar(connection: Connection): StatusBar {
  const stateText = h('span', { class: 'pal-status__state', 'data-testid': 'connection-status' });
  const detailText = h('span', { class: 'pal-status__detail' });
  // Only the connection state is a live region: it changes rarely and matters.
  // The count changes on every keystroke and would drown a screen reader.
  const connectionRegion = h('span', { class: 'pal-status__connection', role: 'status', 'aria-live': 'polite', 'aria-atomic': 'true' },
    h('span', { class: 'pal-status__dot', 'aria-hidden': 'true' }), stateText, h('span', { class: 'pal-status__sep', 'aria-hidden': 'true' }, '·'), detailText);

  const count = h('span', { class: 'pal-status__count', 'data-testid': 'unsynced-count' }, '0');
  const countNoun = h('span', {}, ' unsynced changes');
  const savedText = h('span', { class: 'pal-status__saved' });
  const syncRegion = h('span', { class: 'pal-status__sync', title: 'Local changes the server has not yet confirmed as stored' },
    h('span', { class: 'pal-status__badge' }, count, countNoun), savedText);

  const toggleId = `pal-offline-${Math.random().toString(36).slice(2, 8)}`;
  const toggle = h('input', { type: 'checkbox', role: 'switch', id: toggleId, class: 'pal-switch__input', 'data-testid': 'offline-toggle' });
  const toggleLabel = h('label', { class: 'pal-switch', for: toggleId },
    toggle, h('span', { class: 'pal-switch__track', 'aria-hidden': 'true' }, h('span', { class: 'pal-switch__thumb' })), h('span', { class: 'pal-switch__text' }, 'Work offline'));

  const element = h('footer', { class: 'pal-status', 'aria-label': 'Connection and sync status' }, connectionRegion, syncRegion, toggleLabel);

  const renderState = (state: ConnectionState): void => {
    stateText.textContent = state;
    stateText.dataset['state'] = state;
    element.dataset['state'] = state;
    detailText.textContent = state === 'offline' && !connection.workingOffline ? 'Reconnecting soon — edits are kept on this device' : DETAIL[state];
    toggle.checked = connection.workingOffline;
  };

  // Only the transition between "something pending" and "nothing pending" is
  // announced, through the same polite region as the connection state.
  let lastPending: boolean | null = null;
  const renderCount = (pending: number): void => {
    count.textContent = String(pending);
    countNoun.textContent = pending === 1 ? ' unsynced change' : ' unsynced changes';
    syncRegion.dataset['pending'] = String(pending > 0);
    const isPending = pending > 0;
    if (isPending === lastPending) return;
    lastPending = isPending;
    savedText.textContent = isPending ? '' : 'All changes saved';
  };

  toggle.addEventListener('change', () => {
    if (toggle.checked) connection.goOffline();
    else connection.goOnline();
  });

  const providerOnUnsyncedChanges = ({ number }: { number: number }): void => renderCount(number);
  const stopWatchingState = connection.onStateChange(renderState);
  connection.provider.on('unsyncedChanges', providerOnUnsyncedChanges);
  renderState(connection.state);
  renderCount(connection.provider.unsyncedChanges);

  return {
    element,
    destroy() {
      stopWatchingState();
      connection.provider.off('unsyncedChanges', providerOnUnsyncedChanges);
    },
  };
}
