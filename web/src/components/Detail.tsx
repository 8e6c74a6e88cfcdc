import { useEffect, useRef } from 'preact/hooks';
import type { Address, FlagpostEvent, Message, MessageUpdatedData } from '../api/types';
import { act, busy, conflict, whyDisabled, type ActionKind } from '../state/actions';
import { folderById } from '../state/app';
import { detail } from '../state/detail';
import { indexOf, rows } from '../state/list';
import { setView } from '../state/view';
import { formatDurationLong, formatFull, formatSize, now } from '../lib/time';
import { focusList } from './MessageList';

let headingEl: HTMLHeadingElement | null = null;
export function focusDetail(): void {
  headingEl?.focus();
}

function addr(a: Address | null | undefined): string {
  if (!a) return '—';
  if (a.name && a.address) return `${a.name} <${a.address}>`;
  return a.name || a.address || '—';
}

const FLAG_NAMES: Record<string, string> = {
  '\\Answered': 'Answered',
  '\\Flagged': 'Flagged',
  '\\Seen': 'Seen',
  '\\Deleted': 'Deleted',
  '\\Draft': 'Draft',
  '\\Recent': 'Recent',
};

function flagLabel(f: string): string {
  return FLAG_NAMES[f] ?? f;
}

function describeChange(d: MessageUpdatedData): string {
  const before = new Set(d.before?.flags ?? []);
  const after = new Set(d.after?.flags ?? []);
  const parts: string[] = [];
  const words: Record<string, [string, string]> = {
    '\\Answered': ['marked answered', 'marked pending (answered cleared)'],
    '\\Flagged': ['flagged', 'unflagged'],
    '\\Seen': ['marked seen', 'marked unseen'],
    '\\Deleted': ['marked deleted', 'undeleted'],
  };
  for (const f of after) if (!before.has(f)) parts.push(words[f]?.[0] ?? `${f} set`);
  for (const f of before) if (!after.has(f)) parts.push(words[f]?.[1] ?? `${f} cleared`);
  if (!parts.length) return 'Flags unchanged';
  const s = parts.join(', ');
  return s[0].toUpperCase() + s.slice(1);
}

function describe(ev: FlagpostEvent): { what: string; who: string | null } {
  const data = (ev.data ?? {}) as Record<string, unknown>;
  switch (ev.type) {
    case 'message.added':
      return { what: 'Arrived (first seen by Flagpost)', who: null };
    case 'message.updated': {
      const d = data as unknown as MessageUpdatedData;
      return { what: describeChange(d), who: d.actor ?? null };
    }
    case 'message.removed':
      return { what: 'Removed from the folder (expunged)', who: null };
    case 'folder.reset':
      return { what: 'Folder reset (UIDVALIDITY changed)', who: null };
    default:
      return { what: ev.type, who: null };
  }
}

const ACTIONS: Array<{ kind: ActionKind; on: string; off: string; isOn: (m: Message) => boolean; key: string }> = [
  { kind: 'answered', on: 'Mark answered', off: 'Mark pending', isOn: (m) => m.status === 'answered', key: 'a' },
  { kind: 'flagged', on: 'Flag', off: 'Unflag', isOn: (m) => m.flagged, key: 'f' },
  { kind: 'seen', on: 'Mark seen', off: 'Mark unseen', isOn: (m) => m.seen, key: 'u' },
];

export function Actions({ m }: { m: Message }) {
  const reasons = new Map<string, string>();
  const busyNow = busy.value.has(m.id);
  const buttons = ACTIONS.map((a) => {
    const why = whyDisabled(m, a.kind);
    const rid = why ? `why-${a.kind === 'seen' ? 's' : 'w'}` : undefined;
    if (why && rid) reasons.set(rid, why);
    const on = a.isOn(m);
    return (
      <button
        key={a.kind}
        type="button"
        class={`btn${a.kind === 'answered' && !on ? ' primary' : ''}`}
        data-action={a.kind}
        data-state={on ? 'on' : 'off'}
        disabled={!!why || busyNow}
        aria-describedby={rid}
        onClick={() => act(m.id, a.kind)}
      >
        {on ? a.off : a.on}
        <kbd aria-hidden="true">{a.key}</kbd>
      </button>
    );
  });
  const c = conflict.value;
  return (
    <div class="actions-block">
      <div class="actions" role="group" aria-label="Actions">
        {buttons}
      </div>
      {[...reasons].map(([id, text]) => (
        <p class="why" id={id} key={id} data-why="">
          {text}
        </p>
      ))}
      {c && c.id === m.id && (
        <p class="banner warn" role="alert" data-conflict="">
          {c.text}
        </p>
      )}
    </div>
  );
}

export function Detail() {
  const d = detail.value;
  const ref = useRef<HTMLHeadingElement>(null);
  useEffect(() => {
    headingEl = ref.current;
  });
  if (!d) return null;
  // Prefer the list row for live state (updated by events at once); the detail fetch adds history.
  const i = indexOf(d.id);
  const m: Message | null = (i >= 0 ? rows.value[i] : null) ?? d.msg;
  const history = d.msg?.history ?? [];
  const folder = m ? folderById.value.get(m.folder_id) : undefined;
  const t = now.value;
  const close = () => {
    setView({ open: false });
    focusList();
  };
  return (
    <aside class="detail" aria-labelledby="detail-title" data-message-id={d.id}>
      <div class="detail-head">
        <h2 id="detail-title" ref={ref} tabIndex={-1}>
          {m ? m.subject || '(no subject)' : d.loading ? 'Loading…' : 'Message'}
        </h2>
        <button type="button" class="btn icon" aria-label="Close message details" onClick={close}>
          ×
        </button>
      </div>
      {d.removed && (
        <p class="banner warn" role="status">
          This message is no longer in the folder (expunged or moved).
        </p>
      )}
      {d.error && (
        <p class="banner error" role="alert">
          {d.error}
        </p>
      )}
      {m && !d.removed && <Actions m={m} />}
      {m && (
        <dl class="meta">
          <dt>Status</dt>
          <dd data-detail-status={m.status}>
            {m.status === 'pending'
              ? `Pending — waiting ${formatDurationLong(t - Date.parse(m.received_at))}`
              : m.status === 'answered'
                ? `Answered${m.answered_at ? ` ${formatFull(m.answered_at)}` : ''}`
                : 'Deleted'}
            {m.flagged && ' · flagged'}
          </dd>
          <dt>From</dt>
          <dd>{addr(m.from)}</dd>
          <dt>To</dt>
          <dd>{m.to?.length ? m.to.map(addr).join(', ') : '—'}</dd>
          <dt>Date</dt>
          <dd>{formatFull(m.date)}</dd>
          <dt>Received</dt>
          <dd>{formatFull(m.received_at)}</dd>
          <dt>Folder</dt>
          <dd>{folder?.name ?? m.folder_id}</dd>
          <dt>Size</dt>
          <dd>{formatSize(m.size)}</dd>
          <dt>UID</dt>
          <dd>{m.uid}</dd>
          {m.message_id && (
            <>
              <dt>Message-ID</dt>
              <dd class="mono break">{m.message_id}</dd>
            </>
          )}
        </dl>
      )}
      {m && (
        <section aria-labelledby="flags-title">
          <h3 id="flags-title">Flags</h3>
          {m.flags.length ? (
            <ul class="flags" data-flags={m.flags.join(' ')}>
              {m.flags.map((f) => (
                <li key={f} class="flag-chip" title={f}>
                  {flagLabel(f)}
                </li>
              ))}
            </ul>
          ) : (
            <p class="muted" data-flags="">No flags</p>
          )}
        </section>
      )}
      <section aria-labelledby="history-title">
        <h3 id="history-title">History</h3>
        {d.loading && !d.msg && <p class="muted">Loading history…</p>}
        {d.msg && history.length === 0 && <p class="muted">No recorded changes.</p>}
        {history.length > 0 && (
          <ol class="history">
            {[...history].reverse().map((ev) => {
              const x = describe(ev);
              return (
                <li key={String(ev.id)} data-event-type={ev.type}>
                  <span class="h-what">{x.what}</span>
                  <span class="h-meta">
                    <time dateTime={ev.at}>{formatFull(ev.at)}</time>
                    {' · '}
                    {ev.type === 'message.updated' ? (x.who ? `by ${x.who} via Flagpost` : 'by an IMAP client') : 'by the mail server'}
                  </span>
                </li>
              );
            })}
          </ol>
        )}
      </section>
    </aside>
  );
}
