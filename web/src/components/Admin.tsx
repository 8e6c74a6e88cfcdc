/**
 * The service-admin area, a chunk of its own that only service admins load (the shell renders
 * it only when `/me` says `admin: true`):
 * - Webhooks: list, recent deliveries (polled while shown, and after live events), ping, replay,
 *   enable/disable, delete, and a create form whose signing secret is shown once.
 * - Integration tokens: list, create (the token is shown once), revoke.
 * API errors are problem+json: what is shown is the server's `detail`.
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import { api } from '../api/client';
import type { Delivery, DeliveryStatus, EventTypeName, Token, TokenCreated, Webhook, WebhookCreated } from '../api/types';
import { folderById, me, notify } from '../state/app';
import { onLiveEvent } from '../state/live';
import type { AdminSection } from '../state/view';

export function AdminSectionView({ section }: { section: AdminSection }) {
  return section === 'webhooks' ? <Webhooks /> : <Tokens />;
}

const stampFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
function Stamp({ iso }: { iso: string | null | undefined }) {
  if (!iso) return <span class="muted">—</span>;
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? <span class="muted">—</span> : <time dateTime={iso}>{stampFmt.format(d)}</time>;
}

const message = (e: unknown) => (e as Error).message;

/** Loads `fn` now and on `reload()`; only the latest answer counts. */
function useLoad<T>(fn: () => Promise<T>) {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<string | null>(null);
  const seq = useRef(0);
  const reload = async () => {
    const n = ++seq.current;
    try {
      const d = await fn();
      if (n === seq.current) {
        setData(d);
        setError(null);
      }
    } catch (e) {
      if (n === seq.current) setError(message(e));
    }
  };
  useEffect(() => {
    void reload();
    // Keep lists current while shown (other admins, the CLI, a receiver's 410 disabling a hook).
    const t = setInterval(() => document.visibilityState === 'visible' && void reload(), 15_000);
    return () => clearInterval(t);
  }, []);
  return { data, error, reload };
}

/** A secret the server shows only once: read-only field, copy button, and the warning. */
function ShownOnce({ title, label, value, note, onDone }: { title: string; label: string; value: string; note: string; onDone: () => void }) {
  const head = useRef<HTMLHeadingElement>(null);
  const field = useRef<HTMLInputElement>(null);
  const [copied, setCopied] = useState('');
  useEffect(() => head.current?.focus(), []);
  async function copy() {
    let ok = false;
    try {
      await navigator.clipboard.writeText(value);
      ok = true;
    } catch {
      field.current?.select();
      try {
        ok = document.execCommand('copy');
      } catch {
        ok = false;
      }
    }
    setCopied(ok ? 'Copied to the clipboard.' : 'Copying failed: select the text and copy it by hand.');
  }
  return (
    <section class="once" aria-labelledby="once-title" data-once="">
      <h3 id="once-title" tabIndex={-1} ref={head}>
        {title}
      </h3>
      <p class="banner warn" id="once-warning">
        <strong>Copy it now: it will not be shown again.</strong> {note}
      </p>
      <div class="field">
        <label for="once-value">{label}</label>
        <div class="copy-row">
          <input
            id="once-value"
            ref={field}
            class="mono"
            readOnly
            value={value}
            spellcheck={false}
            aria-describedby="once-warning"
            onFocus={(e) => e.currentTarget.select()}
          />
          <button type="button" class="btn" data-action="copy" onClick={copy}>
            Copy<span class="sr-only"> {label.toLowerCase()}</span>
          </button>
        </div>
      </div>
      <p class="copy-status" role="status">
        {copied}
      </p>
      <button type="button" class="btn primary" onClick={onDone}>
        Done
      </button>
    </section>
  );
}

/** "Are you sure" buttons: take focus when shown; Cancel gives it back to `back` (a selector). */
function Confirm({ yes, onYes, onNo, back }: { yes: string; onYes: () => void; onNo: () => void; back: string }) {
  const ref = useRef<HTMLButtonElement>(null);
  useEffect(() => ref.current?.focus(), []);
  return (
    <span class="confirm">
      <button type="button" class="btn danger small" ref={ref} data-action="confirm" onClick={onYes}>
        {yes}
      </button>
      <button
        type="button"
        class="btn small"
        onClick={() => {
          onNo();
          requestAnimationFrame(() => document.querySelector<HTMLElement>(back)?.focus());
        }}
      >
        Cancel
      </button>
    </span>
  );
}

function Problem({ text }: { text: string | null }) {
  return text ? (
    <p class="banner error" role="alert">
      {text}
    </p>
  ) : null;
}

// ---------------------------------------------------------------- webhooks

const EVENTS: ReadonlyArray<[EventTypeName, string]> = [
  ['message.added', 'A message arrives in a watched folder.'],
  ['message.updated', 'A message’s flags change (answered, flagged, seen…).'],
  ['message.removed', 'A message is expunged or moved away.'],
  ['folder.added', 'A folder starts being watched.'],
  ['folder.removed', 'A folder stops being watched.'],
  ['folder.reset', 'A folder was reset on the mail server (UIDVALIDITY changed).'],
  ['folder.acl_changed', 'A folder’s access rights change.'],
  ['folder.sync_changed', 'A folder’s sync state changes (live, polling, error…).'],
];

const STATUS_TEXT: Record<DeliveryStatus, string> = { pending: 'Pending', delivered: 'Delivered', failed: 'Failed' };

function Webhooks() {
  const { data, error, reload } = useLoad(() => api.webhooks());
  const [form, setForm] = useState(false);
  const [created, setCreated] = useState<WebhookCreated | null>(null);
  const newButton = useRef<HTMLButtonElement>(null);
  const focusNew = () => requestAnimationFrame(() => newButton.current?.focus());
  const back = () => {
    setForm(false);
    setCreated(null);
    focusNew();
  };
  const hooks = data?.webhooks ?? [];
  return (
    <>
      <p class="muted intro">
        Flagpost POSTs every event to these URLs, signed as the Standard Webhooks specification describes (headers{' '}
        <code>webhook-id</code>, <code>webhook-timestamp</code>, <code>webhook-signature</code>). A webhook only receives
        events of folders its identity may read at the time of delivery. Failed deliveries are retried for about a day.
      </p>
      {created ? (
        <ShownOnce
          title={`Webhook created: ${created.url}`}
          label="Signing secret"
          value={created.secret}
          note="Flagpost keeps it only to sign deliveries. Give it to the receiver to verify the webhook-signature header."
          onDone={back}
        />
      ) : form ? (
        <WebhookForm
          onCancel={back}
          onCreated={(w) => {
            setForm(false);
            setCreated(w);
            void reload();
          }}
        />
      ) : (
        <button type="button" class="btn primary" ref={newButton} data-action="new-webhook" onClick={() => setForm(true)}>
          New webhook…
        </button>
      )}
      <Problem text={error} />
      {!data && !error && <p class="muted">Loading webhooks…</p>}
      {data && hooks.length === 0 && <p class="muted empty-note">No webhooks yet.</p>}
      {hooks.length > 0 && (
        <ul class="hooks" aria-label="Webhooks">
          {hooks.map((h) => (
            <WebhookItem key={h.id} hook={h} onChanged={reload} onDeleted={focusNew} />
          ))}
        </ul>
      )}
    </>
  );
}

function WebhookForm({ onCancel, onCreated }: { onCancel: () => void; onCreated: (w: WebhookCreated) => void }) {
  const [url, setUrl] = useState('');
  const [identity, setIdentity] = useState(me.value?.username ?? '');
  const [events, setEvents] = useState<ReadonlySet<string>>(() => new Set(EVENTS.map(([t]) => t)));
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const urlField = useRef<HTMLInputElement>(null);
  useEffect(() => urlField.current?.focus(), []);

  async function submit(e: Event) {
    e.preventDefault();
    if (busy) return;
    if (!url.trim()) {
      setError('Enter the URL Flagpost should send events to.');
      urlField.current?.focus();
      return;
    }
    if (events.size === 0) {
      setError('Choose at least one event type.');
      return;
    }
    setBusy(true);
    setError(null);
    try {
      // Every type chosen: send no filter, so types added later are delivered too.
      const all = events.size === EVENTS.length;
      const w = await api.createWebhook({
        url: url.trim(),
        identity: identity.trim() || null,
        ...(all ? {} : { events: EVENTS.map(([t]) => t).filter((t) => events.has(t)) }),
      });
      onCreated(w);
    } catch (e) {
      setError(message(e));
      setBusy(false);
    }
  }

  return (
    <form class="admin-form" onSubmit={submit} aria-labelledby="wh-form-title" noValidate>
      <h3 id="wh-form-title">New webhook</h3>
      <div class="field">
        <label for="wh-url">Receiver URL</label>
        <input
          id="wh-url"
          ref={urlField}
          type="url"
          inputMode="url"
          autocomplete="off"
          spellcheck={false}
          placeholder="https://example.org/flagpost"
          aria-describedby="wh-url-help"
          value={url}
          onInput={(e) => setUrl(e.currentTarget.value)}
        />
        <p id="wh-url-help" class="help">
          http or https. A 2xx answer counts as delivered; a 410 answer disables the webhook; redirects are not followed.
        </p>
      </div>
      <div class="field">
        <label for="wh-identity">Identity</label>
        <input
          id="wh-identity"
          autocomplete="off"
          spellcheck={false}
          aria-describedby="wh-identity-help"
          value={identity}
          onInput={(e) => setIdentity(e.currentTarget.value)}
        />
        <p id="wh-identity-help" class="help">
          The IMAP user whose rights decide which folders’ events the webhook receives (checked again at every delivery).
        </p>
      </div>
      <fieldset class="rights-fieldset">
        <legend>Event types</legend>
        <ul class="rights-grid">
          {EVENTS.map(([t, explain]) => {
            const id = `wh-ev-${t.replace('.', '-')}`;
            return (
              <li key={t}>
                <input
                  id={id}
                  type="checkbox"
                  data-event={t}
                  checked={events.has(t)}
                  aria-describedby={`${id}-x`}
                  onChange={(e) => {
                    const next = new Set(events);
                    if (e.currentTarget.checked) next.add(t);
                    else next.delete(t);
                    setEvents(next);
                  }}
                />
                <label for={id} class="mono">
                  {t}
                </label>
                <span class="help" id={`${id}-x`}>
                  {explain}
                </span>
              </li>
            );
          })}
        </ul>
        <p class="help">With every type chosen, the webhook also receives event types added in later versions.</p>
      </fieldset>
      <Problem text={error} />
      <div class="form-actions">
        <button type="submit" class="btn primary" aria-disabled={busy}>
          {busy ? 'Creating…' : 'Create webhook'}
        </button>
        <button type="button" class="btn" onClick={onCancel}>
          Cancel
        </button>
      </div>
    </form>
  );
}

function WebhookItem({ hook, onChanged, onDeleted }: { hook: Webhook; onChanged: () => void; onDeleted: () => void }) {
  const [open, setOpen] = useState(false);
  const [busy, setBusy] = useState<'toggle' | 'ping' | 'delete' | null>(null);
  const [ping, setPing] = useState<{ ok: boolean | null; text: string } | null>(null);
  const [confirmDelete, setConfirmDelete] = useState(false);
  const [refresh, setRefresh] = useState(0);
  // The switch follows the click at once; the list reload (or an error) settles it.
  const [enabled, setEnabled] = useState(hook.enabled);
  useEffect(() => setEnabled(hook.enabled), [hook.enabled]);
  const byId = folderById.value;
  const base = `wh-${hook.id}`;

  async function toggle(on: boolean) {
    setBusy('toggle');
    setEnabled(on);
    try {
      await api.patchWebhook(hook.id, { enabled: on });
      notify('success', `${on ? 'Enabled' : 'Disabled'} the webhook to ${hook.url}`);
    } catch (e) {
      setEnabled(!on);
      notify('error', `${hook.url}: ${message(e)}`);
    } finally {
      setBusy(null);
      onChanged();
    }
  }

  async function doPing() {
    if (busy) return;
    setBusy('ping');
    setPing({ ok: null, text: 'Sending a test event…' });
    try {
      const r = await api.ping(hook.id);
      const status = r.response_status != null ? `the receiver answered ${r.response_status}` : 'no answer';
      setPing(
        r.delivered
          ? { ok: true, text: `Ping delivered: ${status} in ${r.duration_ms} ms.` }
          : { ok: false, text: `Ping failed: ${status}${r.error ? ` (${r.error})` : ''} after ${r.duration_ms} ms.` },
      );
    } catch (e) {
      setPing({ ok: false, text: `Ping failed: ${message(e)}` });
    } finally {
      setBusy(null);
      setRefresh((n) => n + 1);
    }
  }

  async function remove() {
    setConfirmDelete(false);
    setBusy('delete');
    try {
      await api.deleteWebhook(hook.id);
      notify('success', `Deleted the webhook to ${hook.url}`);
      onDeleted();
    } catch (e) {
      notify('error', `${hook.url}: ${message(e)}`);
      setBusy(null);
    }
    onChanged();
  }

  const folders = hook.folders ? hook.folders.map((id) => byId.get(id)?.name ?? `folder ${id}`).join(', ') : null;
  return (
    <li class={`hook${hook.enabled ? '' : ' hook-off'}`} data-webhook-id={hook.id} data-url={hook.url} data-enabled={String(hook.enabled)}>
      <div class="hook-head">
        <h3 class="hook-url mono" id={`${base}-url`}>
          {hook.url}
        </h3>
        <span class={`chip ${hook.enabled ? 'chip-on' : 'chip-off'}`}>{hook.enabled ? 'Enabled' : 'Disabled'}</span>
      </div>
      {!hook.enabled && hook.disabled_reason && (
        <p class="why" data-disabled-reason="">
          Disabled: {hook.disabled_reason}
        </p>
      )}
      <dl class="meta hook-meta">
        <dt>Identity</dt>
        <dd class="mono">{hook.identity}</dd>
        <dt>Events</dt>
        <dd>{hook.events ? (hook.events.length ? hook.events.join(', ') : 'none') : 'All event types'}</dd>
        <dt>Folders</dt>
        <dd>{folders ?? `Every folder ${hook.identity} may read`}</dd>
        <dt>Created</dt>
        <dd>
          <Stamp iso={hook.created_at} />
        </dd>
      </dl>
      <div class="actions">
        <label class="switch">
          <input
            type="checkbox"
            role="switch"
            checked={enabled}
            aria-disabled={busy === 'toggle'}
            data-action="enabled"
            onChange={(e) => {
              // Still saving the last click: undo this one rather than queue it.
              if (busy) e.currentTarget.checked = enabled;
              else void toggle(e.currentTarget.checked);
            }}
          />
          Deliver events<span class="sr-only"> to {hook.url}</span>
        </label>
        <button type="button" class="btn" data-action="ping" aria-disabled={busy === 'ping'} onClick={doPing}>
          {busy === 'ping' ? 'Pinging…' : 'Ping'}
          <span class="sr-only"> {hook.url}</span>
        </button>
        <button
          type="button"
          class="btn"
          data-action="deliveries"
          aria-expanded={open}
          aria-controls={`${base}-deliveries`}
          onClick={() => setOpen(!open)}
        >
          {open ? 'Hide deliveries' : 'Show deliveries'}
          <span class="sr-only"> of {hook.url}</span>
        </button>
        {confirmDelete ? (
          <Confirm
            yes={`Yes, delete the webhook to ${hook.url}`}
            onYes={remove}
            onNo={() => setConfirmDelete(false)}
            back={`li[data-webhook-id="${hook.id}"] [data-action="delete"]`}
          />
        ) : (
          <button type="button" class="btn" data-action="delete" aria-disabled={busy === 'delete'} onClick={() => busy || setConfirmDelete(true)}>
            Delete<span class="sr-only"> {hook.url}</span>
          </button>
        )}
      </div>
      <p class={`ping-result${ping?.ok === false ? ' bad' : ''}`} role="status" data-ping={ping?.ok == null ? '' : String(ping.ok)}>
        {ping?.text}
      </p>
      <div id={`${base}-deliveries`} hidden={!open}>
        {open && <Deliveries hook={hook} refresh={refresh} />}
      </div>
    </li>
  );
}

function Deliveries({ hook, refresh }: { hook: Webhook; refresh: number }) {
  const [list, setList] = useState<Delivery[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [replaying, setReplaying] = useState<string | null>(null);
  const seq = useRef(0);
  const titleId = `wh-${hook.id}-deliveries-title`;

  async function load() {
    const n = ++seq.current;
    try {
      const r = await api.deliveries(hook.id);
      if (n !== seq.current) return;
      setList(r.deliveries);
      setError(null);
    } catch (e) {
      if (n === seq.current) setError(message(e));
    }
  }

  useEffect(() => {
    void load();
  }, [refresh]);
  // Deliveries follow events (sent within moments) and retries: poll while shown.
  useEffect(() => {
    let soon: ReturnType<typeof setTimeout> | undefined;
    const poll = setInterval(() => document.visibilityState === 'visible' && void load(), 2000);
    const off = onLiveEvent(() => {
      clearTimeout(soon);
      soon = setTimeout(load, 300);
    });
    return () => {
      clearInterval(poll);
      clearTimeout(soon);
      off();
    };
  }, [hook.id]);

  async function replay(d: Delivery) {
    if (replaying) return;
    setReplaying(d.id);
    try {
      await api.replay(hook.id, d.id);
      notify('success', `Event ${d.event_id} is being sent again`);
      await load();
    } catch (e) {
      notify('error', `Replay of event ${d.event_id}: ${message(e)}`);
    } finally {
      setReplaying(null);
    }
  }

  return (
    <section class="deliveries" aria-labelledby={titleId}>
      <div class="deliveries-head">
        <h4 id={titleId}>Recent deliveries</h4>
        <button type="button" class="btn small" onClick={() => void load()}>
          Refresh<span class="sr-only"> deliveries of {hook.url}</span>
        </button>
      </div>
      <Problem text={error} />
      {!list && !error && <p class="muted">Loading deliveries…</p>}
      {list && list.length === 0 && <p class="muted">No deliveries yet: events are sent as they happen.</p>}
      {list && list.length > 0 && (
        <div class="table-scroll">
          <table class="data">
            <caption class="sr-only">Recent deliveries to {hook.url}, newest first</caption>
            <thead>
              <tr>
                <th scope="col">Event</th>
                <th scope="col">Status</th>
                <th scope="col">Attempts</th>
                <th scope="col">Response</th>
                <th scope="col">Duration</th>
                <th scope="col">Last attempt</th>
                <th scope="col">Next attempt</th>
                <th scope="col">Error</th>
                <th scope="col">
                  <span class="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {list.map((d) => (
                <tr key={d.id} data-delivery-id={d.id} data-event-id={d.event_id} data-status={d.status}>
                  <th scope="row" class="mono">
                    {d.event_id}
                  </th>
                  <td>
                    <span class={`chip dl-${d.status}`}>{STATUS_TEXT[d.status] ?? d.status}</span>
                  </td>
                  <td class="num">{d.attempt}</td>
                  <td class="num">{d.response_status ?? '—'}</td>
                  <td class="num">{d.duration_ms != null ? `${d.duration_ms} ms` : '—'}</td>
                  <td>
                    <Stamp iso={d.at} />
                  </td>
                  <td>
                    <Stamp iso={d.next_attempt_at} />
                  </td>
                  <td class="err-cell">{d.error ?? ''}</td>
                  <td>
                    <button
                      type="button"
                      class="btn small"
                      data-action="replay"
                      aria-disabled={replaying === d.id}
                      onClick={() => void replay(d)}
                    >
                      Replay<span class="sr-only"> event {d.event_id}</span>
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

// ---------------------------------------------------------------- tokens

const SCOPES: ReadonlyArray<[string, string]> = [
  ['read', 'List folders and messages, read the change feed and the live stream.'],
  ['write', 'Change flags (answered, flagged, seen), within the identity’s own w and s rights.'],
  ['acl', 'Read and change folder ACLs where the identity holds a; with a service-admin identity, also tokens and webhooks.'],
];

function Tokens() {
  const { data, error, reload } = useLoad(() => api.tokens());
  const [form, setForm] = useState(false);
  const [created, setCreated] = useState<TokenCreated | null>(null);
  const [confirm, setConfirm] = useState<string | null>(null);
  const [busy, setBusy] = useState<string | null>(null);
  const newButton = useRef<HTMLButtonElement>(null);
  const back = () => {
    setForm(false);
    setCreated(null);
    requestAnimationFrame(() => newButton.current?.focus());
  };

  async function revoke(t: Token) {
    setConfirm(null);
    setBusy(t.id);
    try {
      await api.revokeToken(t.id);
      notify('success', `Revoked the token “${t.name}”`);
      // Its row goes away: focus goes on to something that stays.
      requestAnimationFrame(() => newButton.current?.focus());
    } catch (e) {
      notify('error', `${t.name}: ${message(e)}`);
    } finally {
      setBusy(null);
      void reload();
    }
  }

  const tokens = data?.tokens ?? [];
  return (
    <>
      <p class="muted intro">
        Integration tokens let other programs use the API as an IMAP user, with the rights that user has, limited by the
        token’s scopes. Send one as <code>Authorization: Bearer &lt;token&gt;</code>. Revoking one ends it at once.
      </p>
      {created ? (
        <ShownOnce
          title={`Token “${created.name}” created`}
          label="Token"
          value={created.token}
          note="Flagpost keeps only a hash of it. Store it where the integration reads its secrets."
          onDone={back}
        />
      ) : form ? (
        <TokenForm
          onCancel={back}
          onCreated={(t) => {
            setForm(false);
            setCreated(t);
            void reload();
          }}
        />
      ) : (
        <button type="button" class="btn primary" ref={newButton} data-action="new-token" onClick={() => setForm(true)}>
          New token…
        </button>
      )}
      <Problem text={error} />
      {!data && !error && <p class="muted">Loading tokens…</p>}
      {data && tokens.length === 0 && <p class="muted empty-note">No integration tokens.</p>}
      {tokens.length > 0 && (
        <div class="table-scroll">
          <table class="data tokens">
            <caption class="sr-only">Integration tokens, newest first</caption>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Identity</th>
                <th scope="col">Scopes</th>
                <th scope="col">Created</th>
                <th scope="col">Last used</th>
                <th scope="col">Expires</th>
                <th scope="col">
                  <span class="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {tokens.map((t) => (
                <tr key={t.id} data-token-id={t.id} data-name={t.name}>
                  <th scope="row">{t.name}</th>
                  <td class="mono">{t.identity}</td>
                  <td>{t.scopes.join(', ')}</td>
                  <td>
                    <Stamp iso={t.created_at} />
                  </td>
                  <td>{t.last_used_at ? <Stamp iso={t.last_used_at} /> : <span class="muted">never</span>}</td>
                  <td>{t.expires_at ? <Stamp iso={t.expires_at} /> : <span class="muted">never</span>}</td>
                  <td class="row-actions">
                    {confirm === t.id ? (
                      <Confirm
                        yes={`Yes, revoke “${t.name}”`}
                        onYes={() => void revoke(t)}
                        onNo={() => setConfirm(null)}
                        back={`tr[data-token-id="${t.id}"] [data-action="revoke"]`}
                      />
                    ) : (
                      <button
                        type="button"
                        class="btn small"
                        data-action="revoke"
                        aria-disabled={busy === t.id}
                        onClick={() => busy !== t.id && setConfirm(t.id)}
                      >
                        Revoke<span class="sr-only"> “{t.name}”</span>
                      </button>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </>
  );
}

function TokenForm({ onCancel, onCreated }: { onCancel: () => void; onCreated: (t: TokenCreated) => void }) {
  const [name, setName] = useState('');
  const [identity, setIdentity] = useState('');
  const [scopes, setScopes] = useState<ReadonlySet<string>>(() => new Set(['read']));
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const nameField = useRef<HTMLInputElement>(null);
  const identityField = useRef<HTMLInputElement>(null);
  useEffect(() => nameField.current?.focus(), []);

  async function submit(e: Event) {
    e.preventDefault();
    if (busy) return;
    if (!name.trim()) {
      setError('Enter a name to recognise the token by.');
      nameField.current?.focus();
      return;
    }
    if (!identity.trim()) {
      setError('Enter the IMAP user the token acts as.');
      identityField.current?.focus();
      return;
    }
    if (scopes.size === 0) {
      setError('Choose at least one scope.');
      return;
    }
    setBusy(true);
    setError(null);
    try {
      const t = await api.createToken({
        name: name.trim(),
        identity: identity.trim(),
        scopes: SCOPES.map(([s]) => s).filter((s) => scopes.has(s)),
      });
      onCreated(t);
    } catch (e) {
      setError(message(e));
      setBusy(false);
    }
  }

  return (
    <form class="admin-form" onSubmit={submit} aria-labelledby="tk-form-title" noValidate>
      <h3 id="tk-form-title">New integration token</h3>
      <div class="field">
        <label for="tk-name">Name</label>
        <input
          id="tk-name"
          ref={nameField}
          autocomplete="off"
          aria-describedby="tk-name-help"
          value={name}
          onInput={(e) => setName(e.currentTarget.value)}
        />
        <p id="tk-name-help" class="help">
          What uses it, e.g. “CRM sync”.
        </p>
      </div>
      <div class="field">
        <label for="tk-identity">Identity</label>
        <input
          id="tk-identity"
          ref={identityField}
          autocomplete="off"
          spellcheck={false}
          aria-describedby="tk-identity-help"
          value={identity}
          onInput={(e) => setIdentity(e.currentTarget.value)}
        />
        <p id="tk-identity-help" class="help">
          The IMAP user whose rights the token acts with. It never gets more than that user has.
        </p>
      </div>
      <fieldset class="rights-fieldset">
        <legend>Scopes</legend>
        <ul class="rights-grid">
          {SCOPES.map(([s, explain]) => (
            <li key={s}>
              <input
                id={`tk-scope-${s}`}
                type="checkbox"
                data-scope={s}
                checked={scopes.has(s)}
                aria-describedby={`tk-scope-${s}-x`}
                onChange={(e) => {
                  const next = new Set(scopes);
                  if (e.currentTarget.checked) next.add(s);
                  else next.delete(s);
                  setScopes(next);
                }}
              />
              <label for={`tk-scope-${s}`} class="mono">
                {s}
              </label>
              <span class="help" id={`tk-scope-${s}-x`}>
                {explain}
              </span>
            </li>
          ))}
        </ul>
      </fieldset>
      <Problem text={error} />
      <div class="form-actions">
        <button type="submit" class="btn primary" aria-disabled={busy}>
          {busy ? 'Creating…' : 'Create token'}
        </button>
        <button type="button" class="btn" onClick={onCancel}>
          Cancel
        </button>
      </div>
    </form>
  );
}
