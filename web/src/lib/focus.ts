import { useEffect } from 'preact/hooks';

/** Gives focus back to whatever had it when the component mounted (dialogs). */
export function useRestoreFocus(): void {
  useEffect(() => {
    const opener = document.activeElement as HTMLElement | null;
    return () => {
      const target = opener && opener.isConnected ? opener : document.getElementById('message-list');
      requestAnimationFrame(() => target?.focus({ preventScroll: true }));
    };
  }, []);
}
