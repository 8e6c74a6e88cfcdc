import { computed, signal } from '@preact/signals';
import { me } from './app';
import { view } from './view';

export const helpOpen = signal(false);
export const aclOpen = signal(false);

/** The admin section on screen: only ever for service admins, whatever the URL says. */
export const adminSection = computed(() => (me.value?.admin ? view.value.admin : null));
