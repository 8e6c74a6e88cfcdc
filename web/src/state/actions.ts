/**
 * Flag changes through PATCH /messages/{id} with If-Match. Rights are checked up front so the
 * UI can explain a disabled action; a 412 means someone else changed the message since this
 * tab last saw it: the message is reloaded and the user is told, nothing is retried blindly.
 */
import { signal } from '@preact/signals';
import { api, ApiError } from '../api/client';
import type { Message, MessagePatch } from '../api/types';
import { has } from '../lib/rights';
import { folderById, notify } from './app';
import { detail, loadDetail } from './detail';
import { indexOf, replaceMessage, rows, staleIds } from './list';

export type ActionKind = 'answered' | 'flagged' | 'seen';

export const busy = signal<ReadonlySet<string>>(new Set());
/** The last conflict, shown next to the actions until the next action. */
export const conflict = signal<{ id: string; text: string } | null>(null);

export function rightFor(kind: ActionKind): 'w' | 's' {
  return kind === 'seen' ? 's' : 'w';
}

/** Why an action is not allowed on this message, or null when it is. */
export function whyDisabled(m: Message, kind: ActionKind): string | null {
  const f = folderById.value.get(m.folder_id);
  const right = rightFor(kind);
  if (!f) return 'This folder is no longer available to you.';
  if (m.status === 'deleted' && kind !== 'seen') return 'The message is marked deleted.';
  if (!has(f.my_rights, right)) {
    return right === 'w'
      ? `Read-only: changing answered or flagged needs the “w” (write) right on ${f.name}; you have “${f.my_rights || 'none'}”.`
      : `Changing seen needs the “s” (keep seen) right on ${f.name}; you have “${f.my_rights || 'none'}”.`;
  }
  return null;
}

function label(kind: ActionKind, on: boolean): string {
  if (kind === 'answered') return on ? 'Marked answered' : 'Marked pending';
  if (kind === 'flagged') return on ? 'Flagged' : 'Unflagged';
  return on ? 'Marked seen' : 'Marked unseen';
}

function current(m: Message, kind: ActionKind): boolean {
  return kind === 'answered' ? m.status === 'answered' : kind === 'flagged' ? m.flagged : m.seen;
}

function setBusy(id: string, on: boolean): void {
  const s = new Set(busy.value);
  if (on) s.add(id);
  else s.delete(id);
  busy.value = s;
}

function latest(id: string): Message | null {
  const d = detail.value;
  const i = indexOf(id);
  if (i >= 0) return rows.value[i];
  if (d?.id === id && d.msg) return d.msg;
  return null;
}

/** Sets `kind` to `value` (toggles when value is omitted) on message `id`. */
export async function act(id: string, kind: ActionKind, value?: boolean): Promise<void> {
  let m = latest(id);
  if (!m || busy.value.has(id)) return;
  const why = whyDisabled(m, kind);
  if (why) {
    notify('warning', why);
    return;
  }
  const target = value ?? !current(m, kind);
  conflict.value = null;
  setBusy(id, true);
  try {
    if (staleIds.has(id)) {
      // An event changed this row since it was loaded: its etag is old. What the user saw is
      // the event's state; fetch the etag that goes with it, and stop if it moved on again.
      const fresh = await api.message(id);
      const changed = fresh.flags.join(' ') !== m.flags.join(' ');
      replaceMessage(fresh);
      if (changed) throw new ApiError(412, null, 'changed', null);
      m = fresh;
    }
    const patch: MessagePatch = { [kind]: target };
    const updated = await api.patchMessage(id, m.etag, patch);
    replaceMessage(updated);
    if (detail.value?.id === id) void loadDetail(id, true);
    notify('success', `${label(kind, target)}: ${updated.subject || '(no subject)'}`);
  } catch (e) {
    const err = e as ApiError;
    if (err.status === 412) {
      const text = 'Changed by someone else — reloaded. Check the current state and try again if still needed.';
      conflict.value = { id, text };
      notify('warning', text);
      try {
        const fresh = await loadDetailOrMessage(id);
        if (fresh) replaceMessage(fresh);
      } catch {
        /* shown by the detail panel */
      }
    } else if (err.status === 403) {
      notify('error', err.message || 'You lack the right for this change.');
    } else if (err.status === 404) {
      notify('error', 'This message no longer exists.');
    } else if (err.status !== 401) {
      notify('error', err.message);
    }
  } finally {
    setBusy(id, false);
  }
}

async function loadDetailOrMessage(id: string): Promise<Message | null> {
  if (detail.value?.id === id) return loadDetail(id, true);
  return api.message(id);
}
