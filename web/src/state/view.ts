/**
 * The view state: folder, filters, selection. It lives in the URL hash so a reload or a
 * re-login after an expired session lands on the same place.
 */
import { effect, signal } from '@preact/signals';
import type { SortOrder, StatusFilter } from '../api/types';

export interface View {
  /** null = all folders */
  folder: string | null;
  status: StatusFilter;
  /** null = either */
  flagged: boolean | null;
  q: string;
  sort: SortOrder;
  /** selected message id */
  selected: string | null;
  /** detail panel open for the selected message */
  open: boolean;
  /** the service-admin area's section shown instead of the messages (admins only) */
  admin: AdminSection | null;
}

export type AdminSection = 'webhooks' | 'tokens';

const DEFAULT: View = { folder: null, status: 'any', flagged: null, q: '', sort: 'oldest', selected: null, open: false, admin: null };

function parse(hash: string): View & { folderGiven: boolean } {
  const p = new URLSearchParams(hash.replace(/^#\/?\??/, ''));
  const status = p.get('status');
  const sort = p.get('sort');
  const flagged = p.get('flagged');
  const admin = p.get('admin');
  return {
    folder: p.get('folder') || null,
    folderGiven: p.has('folder'),
    status: status === 'pending' || status === 'answered' || status === 'deleted' ? status : 'any',
    flagged: flagged === 'true' ? true : flagged === 'false' ? false : null,
    q: p.get('q') ?? '',
    sort: sort === 'newest' ? 'newest' : 'oldest',
    selected: p.get('msg') || null,
    open: p.get('open') === '1' && !!p.get('msg'),
    admin: admin === 'webhooks' || admin === 'tokens' ? admin : null,
  };
}

function serialize(v: View): string {
  const p = new URLSearchParams();
  p.set('folder', v.folder ?? '');
  if (v.status !== 'any') p.set('status', v.status);
  if (v.flagged !== null) p.set('flagged', String(v.flagged));
  if (v.q) p.set('q', v.q);
  if (v.sort !== 'oldest') p.set('sort', v.sort);
  if (v.selected) p.set('msg', v.selected);
  if (v.open && v.selected) p.set('open', '1');
  if (v.admin) p.set('admin', v.admin);
  return '#/?' + p.toString();
}

const initial = parse(location.hash);
/** Whether the URL named a folder (else the app picks a sensible default once folders load). */
export const folderFromUrl = initial.folderGiven;
export const view = signal<View>({ ...DEFAULT, ...initial });

export function setView(patch: Partial<View>): void {
  view.value = { ...view.value, ...patch };
}

effect(() => {
  const h = serialize(view.value);
  if (location.hash !== h) history.replaceState(null, '', h);
});

window.addEventListener('hashchange', () => {
  const v = parse(location.hash);
  const { folderGiven: _, ...rest } = v;
  view.value = rest;
});
