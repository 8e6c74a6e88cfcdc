import { dismiss, notices } from '../state/app';

/** Toasts. Errors and warnings are assertive, the rest polite; neither takes focus. */
export function Notices() {
  const list = notices.value;
  const urgent = list.filter((n) => n.kind === 'error' || n.kind === 'warning');
  const calm = list.filter((n) => n.kind !== 'error' && n.kind !== 'warning');
  const render = (n: (typeof list)[number]) => (
    <div key={n.id} class={`toast toast-${n.kind}`} data-kind={n.kind}>
      <span>{n.text}</span>
      <button type="button" class="toast-x" aria-label="Dismiss" onClick={() => dismiss(n.id)}>
        ×
      </button>
    </div>
  );
  return (
    <div class="toasts">
      <div role="alert" aria-live="assertive">{urgent.map(render)}</div>
      <div role="status" aria-live="polite">{calm.map(render)}</div>
    </div>
  );
}
