import { useRestoreFocus } from '../lib/focus';
import { useEffect, useRef } from 'preact/hooks';

const KEYS: Array<[string, string]> = [
  ['j / ↓', 'Next message'],
  ['k / ↑', 'Previous message'],
  ['Enter', 'Open the selected message'],
  ['Esc', 'Close the message or dialog'],
  ['a', 'Mark answered / pending'],
  ['f', 'Flag / unflag'],
  ['u', 'Mark seen / unseen'],
  ['/', 'Search'],
  ['?', 'This help'],
];

export function HelpDialog({ onClose }: { onClose: () => void }) {
  const ref = useRef<HTMLDialogElement>(null);
  useRestoreFocus();
  useEffect(() => {
    const d = ref.current!;
    if (!d.open) d.showModal();
  }, []);
  return (
    <dialog
      ref={ref}
      class="dialog help-dialog"
      aria-labelledby="help-title"
      onClose={onClose}
      onCancel={(e) => {
        e.preventDefault();
        onClose();
      }}
    >
      <div class="dialog-head">
        <h2 id="help-title">Keyboard shortcuts</h2>
        <button type="button" class="btn icon" aria-label="Close keyboard shortcuts" onClick={onClose}>
          ×
        </button>
      </div>
      <table class="keys">
        <caption class="sr-only">Keyboard shortcuts</caption>
        <thead>
          <tr>
            <th scope="col">Key</th>
            <th scope="col">Does</th>
          </tr>
        </thead>
        <tbody>
          {KEYS.map(([k, d]) => (
            <tr key={k}>
              <td>
                <kbd>{k}</kbd>
              </td>
              <td>{d}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <p class="muted">Shortcuts work anywhere except while typing in a field.</p>
    </dialog>
  );
}
