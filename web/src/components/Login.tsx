import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiError } from '../api/client';
import { login, me } from '../state/app';

export function Login({ expired }: { expired: boolean }) {
  const [username, setUsername] = useState(expired ? (me.value?.username ?? '') : '');
  const [password, setPassword] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [wait, setWait] = useState(0);
  const userRef = useRef<HTMLInputElement>(null);
  const passRef = useRef<HTMLInputElement>(null);

  useEffect(() => {
    (username ? passRef : userRef).current?.focus();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);

  useEffect(() => {
    if (wait <= 0) return;
    const t = setTimeout(() => setWait(wait - 1), 1000);
    return () => clearTimeout(t);
  }, [wait]);

  async function submit(e: Event) {
    e.preventDefault();
    if (busy || wait > 0) return;
    if (!username.trim() || !password) {
      setError('Enter your IMAP user name and password.');
      return;
    }
    setBusy(true);
    setError(null);
    try {
      await login(username.trim(), password);
    } catch (err) {
      const a = err as ApiError;
      if (a.status === 401) setError(a.problem?.detail || 'Wrong user name or password.');
      else if (a.status === 429) {
        setWait(a.retryAfter ?? 30);
        setError(a.problem?.detail || 'Too many sign-in attempts.');
      } else if (a.status === 503) setError(a.problem?.detail || 'The mail server cannot be reached right now.');
      else setError(a.message);
      setPassword('');
      passRef.current?.focus();
    } finally {
      setBusy(false);
    }
  }

  return (
    <main class="login" id="main">
      <form class="login-card" onSubmit={submit} aria-labelledby="login-title" noValidate>
        <div class="brand" aria-hidden="true">
          <svg viewBox="0 0 32 32" width="36" height="36">
            <rect width="32" height="32" rx="7" fill="#1d4ed8" />
            <path d="M10 6v20" stroke="#fff" stroke-width="3" stroke-linecap="round" />
            <path d="M11 7h12l-3 5 3 5H11z" fill="#fbbf24" />
          </svg>
        </div>
        <h1 id="login-title">Sign in to Flagpost</h1>
        <p class="muted">Use your mail (IMAP) account. Your password goes to the mail server and is never stored.</p>
        {expired && (
          <p class="banner info" role="status">
            Your session has expired. Sign in again to return to where you were.
          </p>
        )}
        <div class="field">
          <label for="login-user">User name</label>
          <input
            id="login-user"
            ref={userRef}
            name="username"
            autocomplete="username"
            autocapitalize="none"
            spellcheck={false}
            value={username}
            onInput={(e) => setUsername(e.currentTarget.value)}
            required
          />
        </div>
        <div class="field">
          <label for="login-pass">Password</label>
          <input
            id="login-pass"
            ref={passRef}
            name="password"
            type="password"
            autocomplete="current-password"
            value={password}
            onInput={(e) => setPassword(e.currentTarget.value)}
            required
          />
        </div>
        <div aria-live="assertive" class="login-error">
          {error && (
            <p class="banner error" id="login-error">
              {error}
              {wait > 0 && ` Try again in ${wait} s.`}
            </p>
          )}
        </div>
        <button class="btn primary wide" type="submit" disabled={busy || wait > 0} aria-describedby={error ? 'login-error' : undefined}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
    </main>
  );
}
