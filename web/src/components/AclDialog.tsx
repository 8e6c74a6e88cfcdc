/**
 * ACL administration for one folder (shown only with the `a` right): each entry's RFC 4314
 * rights as labelled checkboxes, saved with PUT (replace) or removed with DELETE, an add form,
 * and the caller's own rights. Changes made elsewhere (folder.acl_changed) reload the table,
 * keeping edits not yet saved.
 */
import { useRestoreFocus } from '../lib/focus';
import { useEffect, useRef, useState } from 'preact/hooks';
import { api } from '../api/client';
import type { Acl, Folder } from '../api/types';
import { me, notify, scheduleFolders } from '../state/app';
import { onLiveEvent } from '../state/live';
import { describeIdentifier, normalize, RIGHTS } from '../lib/rights';

function RightsBoxes({
  value,
  onChange,
  owner,
  idPrefix,
}: {
  value: string;
  onChange: (v: string) => void;
  owner: string;
  idPrefix: string;
}) {
  return (
    <>
      {RIGHTS.map((r) => {
        const id = `${idPrefix}-${r.letter}`;
        return (
          <td key={r.letter} class="acl-cell">
            <input
              id={id}
              type="checkbox"
              checked={value.includes(r.letter)}
              data-right={r.letter}
              aria-label={`${r.name} (${r.letter}) for ${owner}`}
              title={`${r.letter} — ${r.name}: ${r.explain}`}
              onChange={(e) => {
                const set = new Set(value);
                if (e.currentTarget.checked) set.add(r.letter);
                else set.delete(r.letter);
                onChange(normalize(set));
              }}
            />
          </td>
        );
      })}
    </>
  );
}

function HeaderCells() {
  return (
    <>
      {RIGHTS.map((r) => (
        <th key={r.letter} scope="col" class="acl-cell" title={r.explain}>
          <span class="acl-letter">{r.letter}</span>
          <span class="acl-name">{r.name}</span>
        </th>
      ))}
    </>
  );
}

export function AclDialog({ folder, onClose }: { folder: Folder; onClose: () => void }) {
  const ref = useRef<HTMLDialogElement>(null);
  useRestoreFocus();
  const [acl, setAcl] = useState<Acl | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [drafts, setDrafts] = useState<Record<string, string>>({});
  const [saving, setSaving] = useState<string | null>(null);
  const [confirmRemove, setConfirmRemove] = useState<string | null>(null);
  const [newId, setNewId] = useState('');
  const [newRights, setNewRights] = useState('lr');
  const [addError, setAddError] = useState<string | null>(null);

  async function load() {
    try {
      const a = await api.acl(folder.id);
      setAcl(a);
      setError(null);
    } catch (e) {
      setError((e as Error).message);
    }
  }

  useEffect(() => {
    const d = ref.current!;
    if (!d.open) d.showModal();
    void load();
    const off = onLiveEvent((ev) => {
      if (ev.type === 'folder.acl_changed' && ev.folder_id === folder.id) void load();
    });
    return off;
  }, [folder.id]);

  async function save(identifier: string, rights: string) {
    setSaving(identifier);
    try {
      if (rights === '') await api.deleteAcl(folder.id, identifier);
      else await api.setAcl(folder.id, identifier, rights);
      setDrafts((d) => {
        const n = { ...d };
        delete n[identifier];
        return n;
      });
      notify('success', rights === '' ? `Removed ${identifier}` : `Saved rights “${rights}” for ${identifier}`);
      await load();
      scheduleFolders(0);
    } catch (e) {
      notify('error', `${identifier}: ${(e as Error).message}`);
    } finally {
      setSaving(null);
    }
  }

  async function remove(identifier: string) {
    setConfirmRemove(null);
    setSaving(identifier);
    try {
      await api.deleteAcl(folder.id, identifier);
      notify('success', `Removed ${identifier}`);
      await load();
      scheduleFolders(0);
    } catch (e) {
      notify('error', `${identifier}: ${(e as Error).message}`);
    } finally {
      setSaving(null);
    }
  }

  async function add(e: Event) {
    e.preventDefault();
    const id = newId.trim();
    if (!id) {
      setAddError('Enter a user name, “anyone”, “authenticated”, or “-name” for a negative entry.');
      return;
    }
    if (!newRights) {
      setAddError('Choose at least one right.');
      return;
    }
    if (acl?.entries.some((x) => x.identifier === id)) {
      setAddError(`${id} already has an entry: change it in the table.`);
      return;
    }
    setAddError(null);
    await save(id, newRights);
    setNewId('');
    setNewRights('lr');
  }

  const self = me.value?.username;
  return (
    <dialog
      ref={ref}
      class="dialog acl-dialog"
      aria-labelledby="acl-title"
      onClose={onClose}
      onCancel={(e) => {
        e.preventDefault();
        onClose();
      }}
    >
      <div class="dialog-head">
        <h2 id="acl-title">Access rights — {folder.name}</h2>
        <button type="button" class="btn icon" aria-label="Close access rights" onClick={onClose}>
          ×
        </button>
      </div>
      <p class="muted">
        Rights are stored on the mail server (IMAP ACL, RFC 4314) and apply to every mail client. Changes take effect at once.
      </p>
      {acl && (
        <p class="my-rights" data-my-rights={acl.my_rights}>
          Your rights here: <strong class="mono">{acl.my_rights || 'none'}</strong>
          {acl.my_rights && (
            <span class="muted"> ({[...acl.my_rights].map((l) => RIGHTS.find((r) => r.letter === l)?.name ?? l).join(', ')})</span>
          )}
        </p>
      )}
      {error && (
        <p class="banner error" role="alert">
          {error}
        </p>
      )}
      {!acl && !error && <p class="muted">Loading…</p>}
      {acl && (
        <div class="table-scroll">
          <table class="acl">
            <caption class="sr-only">Access control entries for {folder.name}</caption>
            <thead>
              <tr>
                <th scope="col">Identifier</th>
                <HeaderCells />
                <th scope="col">
                  <span class="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {acl.entries.length === 0 && (
                <tr>
                  <td colSpan={RIGHTS.length + 2} class="muted">
                    No entries.
                  </td>
                </tr>
              )}
              {acl.entries.map((entry, idx) => {
                const draft = drafts[entry.identifier];
                const value = draft ?? entry.rights;
                const dirty = draft !== undefined && draft !== entry.rights;
                const note = describeIdentifier(entry.identifier);
                const losingA = entry.identifier === self && entry.rights.includes('a') && !value.includes('a');
                return (
                  <tr key={entry.identifier} data-identifier={entry.identifier} data-rights={entry.rights} class={dirty ? 'dirty' : ''}>
                    <th scope="row" class="acl-id">
                      <span class="mono">{entry.identifier}</span>
                      {entry.identifier === self && <span class="tag">you</span>}
                      {note && <span class="acl-note">{note}</span>}
                      {losingA && <span class="acl-note warn-text">You would lose access to this editor.</span>}
                    </th>
                    <RightsBoxes
                      value={value}
                      owner={entry.identifier}
                      idPrefix={`acl-${idx}`}
                      onChange={(v) => setDrafts((d) => ({ ...d, [entry.identifier]: v }))}
                    />
                    <td class="acl-actions">
                      {confirmRemove === entry.identifier ? (
                        <span class="confirm">
                          <button type="button" class="btn danger small" onClick={() => remove(entry.identifier)}>
                            Remove {entry.identifier}
                          </button>
                          <button type="button" class="btn small" onClick={() => setConfirmRemove(null)}>
                            Cancel
                          </button>
                        </span>
                      ) : (
                        <>
                          <button
                            type="button"
                            class="btn primary small"
                            disabled={!dirty || saving === entry.identifier}
                            data-acl-save={entry.identifier}
                            onClick={() => save(entry.identifier, value)}
                          >
                            {saving === entry.identifier ? 'Saving…' : 'Save'}
                            <span class="sr-only"> rights for {entry.identifier}</span>
                          </button>
                          {dirty && (
                            <button
                              type="button"
                              class="btn small"
                              onClick={() =>
                                setDrafts((d) => {
                                  const n = { ...d };
                                  delete n[entry.identifier];
                                  return n;
                                })
                              }
                            >
                              Undo<span class="sr-only"> changes for {entry.identifier}</span>
                            </button>
                          )}
                          <button
                            type="button"
                            class="btn small"
                            data-acl-remove={entry.identifier}
                            disabled={saving === entry.identifier}
                            onClick={() => setConfirmRemove(entry.identifier)}
                          >
                            Remove<span class="sr-only"> {entry.identifier}</span>
                          </button>
                        </>
                      )}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
      {acl && (
        <form class="acl-add" onSubmit={add} aria-labelledby="acl-add-title">
          <h3 id="acl-add-title">Add an identifier</h3>
          <div class="field">
            <label for="acl-new-id">User name or identifier</label>
            <input
              id="acl-new-id"
              value={newId}
              autocomplete="off"
              spellcheck={false}
              aria-describedby="acl-new-help"
              onInput={(e) => setNewId(e.currentTarget.value)}
            />
            <p id="acl-new-help" class="help">
              A user name, <code>anyone</code>, <code>authenticated</code>, or <code>-name</code> to take rights away from
              someone.
            </p>
          </div>
          <fieldset class="rights-fieldset">
            <legend>Rights for the new entry</legend>
            <ul class="rights-grid">
              {RIGHTS.map((r) => (
                <li key={r.letter}>
                  <input
                    id={`acl-new-${r.letter}`}
                    type="checkbox"
                    data-right={r.letter}
                    checked={newRights.includes(r.letter)}
                    aria-describedby={`acl-new-${r.letter}-x`}
                    onChange={(e) => {
                      const s = new Set(newRights);
                      if (e.currentTarget.checked) s.add(r.letter);
                      else s.delete(r.letter);
                      setNewRights(normalize(s));
                    }}
                  />
                  <label for={`acl-new-${r.letter}`}>
                    <span class="mono">{r.letter}</span> {r.name}
                  </label>
                  <span class="help" id={`acl-new-${r.letter}-x`}>
                    {r.explain}
                  </span>
                </li>
              ))}
            </ul>
          </fieldset>
          {addError && (
            <p class="banner error" role="alert">
              {addError}
            </p>
          )}
          <button type="submit" class="btn primary" disabled={saving !== null}>
            Add entry
          </button>
        </form>
      )}
    </dialog>
  );
}
