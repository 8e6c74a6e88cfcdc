import { signal } from '@preact/signals';

export const helpOpen = signal(false);
export const aclOpen = signal(false);
