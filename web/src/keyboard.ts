/**
 * Global shortcuts: j/k move, Enter open, a answered, f flag, u seen, / search, ? help, Esc close.
 * On the admin screens only ? works (there is no message list there).
 */
import { act } from './state/actions';
import { auth } from './state/app';
import { indexOf, loadMore, rows, clearNew } from './state/list';
import { aclOpen, adminSection, helpOpen } from './state/ui';
import { setView, view } from './state/view';
import { focusList, scrollToIndex } from './components/MessageList';
import { focusSearch } from './components/Toolbar';
import { focusDetail } from './components/Detail';

function move(delta: number, absolute?: number): void {
  const list = rows.value;
  if (!list.length) return;
  const cur = indexOf(view.value.selected);
  let next = absolute ?? (cur < 0 ? (delta > 0 ? 0 : list.length - 1) : cur + delta);
  next = Math.max(0, Math.min(list.length - 1, next));
  const id = list[next].id;
  clearNew([id]);
  setView({ selected: id });
  scrollToIndex(next);
  if (next >= list.length - 30) void loadMore();
}

export function installKeyboard(): void {
  document.addEventListener('keydown', (e) => {
    if (auth.value !== 'authenticated' || e.defaultPrevented) return;
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    if (helpOpen.value || aclOpen.value) return; // the dialog owns the keyboard (Esc closes it)
    if (adminSection.value && e.key !== '?') return; // no message list on the admin screens
    const t = e.target as HTMLElement;
    if (t.closest('input, textarea, select, [contenteditable=""], [contenteditable="true"]')) return;
    const inList = t.id === 'message-list';
    const onControl = !inList && !!t.closest('button, a[href], summary');
    const page = Math.max(1, Math.floor((document.getElementById('message-list')?.clientHeight ?? 440) / 44) - 1);
    let handled = true;
    switch (e.key) {
      case 'j':
        move(1);
        break;
      case 'k':
        move(-1);
        break;
      case 'ArrowDown':
        if (inList) move(1);
        else handled = false;
        break;
      case 'ArrowUp':
        if (inList) move(-1);
        else handled = false;
        break;
      case 'PageDown':
        if (inList) move(page);
        else handled = false;
        break;
      case 'PageUp':
        if (inList) move(-page);
        else handled = false;
        break;
      case 'Home':
        if (inList) move(0, 0);
        else handled = false;
        break;
      case 'End':
        if (inList) move(0, rows.value.length - 1);
        else handled = false;
        break;
      case 'Enter':
        if (onControl || !view.value.selected) {
          handled = false;
          break;
        }
        setView({ open: true });
        requestAnimationFrame(() => requestAnimationFrame(focusDetail));
        break;
      case 'Escape':
        if (view.value.open) {
          setView({ open: false });
          focusList();
        } else handled = false;
        break;
      case 'a':
        if (view.value.selected) void act(view.value.selected, 'answered');
        break;
      case 'f':
        if (view.value.selected) void act(view.value.selected, 'flagged');
        break;
      case 'u':
        if (view.value.selected) void act(view.value.selected, 'seen');
        break;
      case '/':
        focusSearch();
        break;
      case '?':
        helpOpen.value = true;
        break;
      default:
        handled = false;
    }
    if (handled) e.preventDefault();
  });
}
