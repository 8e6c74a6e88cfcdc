/** The open message: its full record and history, refreshed when events touch it. */
import { signal } from '@preact/signals';
import { api, ApiError } from '../api/client';
import type { FlagpostEvent, MessageDetail } from '../api/types';
import { replaceMessage } from './list';

export interface DetailState {
  id: string;
  msg: MessageDetail | null;
  loading: boolean;
  error: string | null;
  removed: boolean;
}

export const detail = signal<DetailState | null>(null);
let seq = 0;
let refreshTimer: ReturnType<typeof setTimeout> | null = null;

export async function loadDetail(id: string, keep = false): Promise<MessageDetail | null> {
  const my = ++seq;
  const prev = detail.value;
  const keepMsg = keep && prev?.id === id ? prev.msg : null;
  detail.value = { id, msg: keepMsg, loading: true, error: null, removed: false };
  try {
    const msg = await api.message(id);
    if (my !== seq) return msg;
    detail.value = { id, msg, loading: false, error: null, removed: false };
    replaceMessage(msg);
    return msg;
  } catch (e) {
    if (my !== seq) return null;
    const gone = e instanceof ApiError && e.status === 404;
    detail.value = {
      id,
      msg: keepMsg,
      loading: false,
      error: gone ? null : (e as Error).message,
      removed: gone,
    };
    return null;
  }
}

export function closeDetail(): void {
  seq++;
  detail.value = null;
}

export function applyDetailEvent(ev: FlagpostEvent): void {
  const d = detail.value;
  if (!d) return;
  if (ev.type === 'message.removed' && ev.message_id === d.id) {
    detail.value = { ...d, removed: true };
    return;
  }
  const touches =
    ev.message_id === d.id ||
    ((ev.type === 'folder.reset' || ev.type === 'folder.acl_changed' || ev.type === 'resync') &&
      (!d.msg || ev.folder_id === d.msg.folder_id || ev.type === 'resync'));
  if (!touches) return;
  if (refreshTimer) clearTimeout(refreshTimer);
  refreshTimer = setTimeout(() => {
    refreshTimer = null;
    if (detail.value?.id === d.id) void loadDetail(d.id, true);
  }, 150);
}
