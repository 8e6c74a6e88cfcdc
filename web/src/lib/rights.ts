/** RFC 4314 rights, in the contract's canonical order `lrswipkxtea`. */
export interface RightInfo {
  letter: string;
  name: string;
  explain: string;
}

export const RIGHTS: readonly RightInfo[] = [
  { letter: 'l', name: 'Lookup', explain: 'See that the folder exists (LIST).' },
  { letter: 'r', name: 'Read', explain: 'Open the folder and read its messages.' },
  { letter: 's', name: 'Keep seen', explain: 'Set or clear the Seen flag.' },
  { letter: 'w', name: 'Write flags', explain: 'Set or clear Answered, Flagged and other flags except Seen and Deleted.' },
  { letter: 'i', name: 'Insert', explain: 'Add messages to the folder (APPEND, COPY).' },
  { letter: 'p', name: 'Post', explain: 'Send mail to the folder’s submission address.' },
  { letter: 'k', name: 'Create folders', explain: 'Create sub-folders, or rename folders into this one.' },
  { letter: 'x', name: 'Delete folder', explain: 'Delete or rename the folder itself.' },
  { letter: 't', name: 'Delete messages', explain: 'Set or clear the Deleted flag.' },
  { letter: 'e', name: 'Expunge', explain: 'Permanently remove messages marked Deleted.' },
  { letter: 'a', name: 'Administer', explain: 'Read and change this folder’s access rights.' },
];

const ORDER = RIGHTS.map((r) => r.letter).join('');

export function has(rights: string | null | undefined, letter: string): boolean {
  return !!rights && rights.includes(letter);
}

/** Canonical rights string from a set of letters (order `lrswipkxtea`, each once). */
export function normalize(letters: Iterable<string>): string {
  const set = new Set(letters);
  return [...ORDER].filter((l) => set.has(l)).join('');
}

export function describeIdentifier(id: string): string | null {
  if (id === 'anyone') return 'everyone, including anonymous users';
  if (id === 'authenticated') return 'every logged-in user';
  if (id.startsWith('-')) return `negative entry: takes these rights away from ${id.slice(1)}`;
  if (id.startsWith('$')) return 'group';
  return null;
}
