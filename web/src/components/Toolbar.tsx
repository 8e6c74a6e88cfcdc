import { useEffect, useRef, useState } from 'preact/hooks';
import type { SortOrder, StatusFilter } from '../api/types';
import { setView, view } from '../state/view';

let searchEl: HTMLInputElement | null = null;
export function focusSearch(): void {
  searchEl?.focus();
  searchEl?.select();
}

export function Toolbar({ title, onAcl }: { title: string; onAcl: (() => void) | null }) {
  const v = view.value;
  const [q, setQ] = useState(v.q);
  const ref = useRef<HTMLInputElement>(null);
  useEffect(() => {
    searchEl = ref.current;
  }, []);
  // Follow outside changes (restore after login, hash edits).
  useEffect(() => setQ(v.q), [v.q]);
  useEffect(() => {
    if (q === view.value.q) return;
    const t = setTimeout(() => setView({ q, selected: null, open: false }), 250);
    return () => clearTimeout(t);
  }, [q]);

  return (
    <div class="toolbar">
      <h2 class="folder-title">{title}</h2>
      <form class="filters" role="search" aria-label="Filter messages" onSubmit={(e) => {
        e.preventDefault();
        setView({ q, selected: null, open: false });
      }}>
        <div class="field inline grow">
          <label for="f-q">Search</label>
          <input
            id="f-q"
            ref={ref}
            type="search"
            maxLength={200}
            placeholder="Subject or sender"
            aria-keyshortcuts="/"
            value={q}
            onInput={(e) => setQ(e.currentTarget.value)}
            onKeyDown={(e) => {
              if (e.key === 'Escape') {
                e.currentTarget.blur();
                document.getElementById('message-list')?.focus();
              }
            }}
          />
        </div>
        <div class="field inline">
          <label for="f-status">Status</label>
          <select
            id="f-status"
            value={v.status}
            onChange={(e) => setView({ status: e.currentTarget.value as StatusFilter, selected: null, open: false })}
          >
            <option value="any">Pending, then answered</option>
            <option value="pending">Pending</option>
            <option value="answered">Answered</option>
            <option value="deleted">Deleted</option>
          </select>
        </div>
        <div class="field inline">
          <label for="f-flagged">Flag</label>
          <select
            id="f-flagged"
            value={v.flagged === null ? '' : String(v.flagged)}
            onChange={(e) => {
              const x = e.currentTarget.value;
              setView({ flagged: x === '' ? null : x === 'true', selected: null, open: false });
            }}
          >
            <option value="">Any</option>
            <option value="true">Flagged</option>
            <option value="false">Not flagged</option>
          </select>
        </div>
        <div class="field inline">
          <label for="f-sort">Order</label>
          <select id="f-sort" value={v.sort} onChange={(e) => setView({ sort: e.currentTarget.value as SortOrder })}>
            <option value="oldest">Oldest first</option>
            <option value="newest">Newest first</option>
          </select>
        </div>
      </form>
      {onAcl && (
        <button type="button" class="btn" onClick={onAcl} data-testid="open-acl">
          Access rights…
        </button>
      )}
    </div>
  );
}
