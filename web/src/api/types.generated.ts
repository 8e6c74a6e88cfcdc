/**
 * The API types, generated: `npm run gen:types` writes ./schema.d.ts from openapi/openapi.json
 * (the same bytes as `flagpost openapi`); this file gives its schemas the names the dashboard
 * uses. Where the document leaves a field a plain string (status, sync state, event type), the
 * narrower contract type is kept, intersected so a change of the document still breaks the build.
 */
import type { components } from './schema';

type S = components['schemas'];

export type Rights = string;
export type MessageStatus = S['MessageOut']['status'] & ('pending' | 'answered' | 'deleted');
export type StatusFilter = MessageStatus | 'any';
export type SortOrder = 'oldest' | 'newest';
export type SyncState = S['SyncOut']['state'] & ('live' | 'polling' | 'connecting' | 'error');
export type Problem = S['Problem'];
export type User = S['UserOut'];
export type SessionRequest = S['LoginRequest'];
export type SessionResponse = S['SessionOut'];
export type Me = S['MeOut'];
export type FolderCounts = S['Counts'];
export type FolderSync = S['SyncOut'];
export type Folder = S['FolderOut'];
export type FolderList = S['FolderList'];
export type Address = S['AddressOut'];
export type Message = Omit<S['MessageOut'], 'status'> & { status: MessageStatus };
export type MessagePage = Omit<S['MessageList'], 'messages'> & { messages: Message[] };
export type MessagePatch = S['MessagePatch'];
export type EventType =
  | 'message.added'
  | 'message.updated'
  | 'message.removed'
  | 'folder.added'
  | 'folder.removed'
  | 'folder.reset'
  | 'folder.acl_changed'
  | 'folder.sync_changed'
  | 'resync';
export type FlagpostEvent = Omit<S['EventOut'], 'data' | 'folder_id'> & {
  folder_id: string | null;
  data: Record<string, unknown> | null;
};
export interface MessageUpdatedData {
  before: { flags: string[] };
  after: { flags: string[]; status: MessageStatus; flagged: boolean; seen: boolean };
  actor: string | null;
}
export type MessageDetail = Message & { history: FlagpostEvent[] };
export type EventPage = Omit<S['EventList'], 'events'> & { events: FlagpostEvent[] };
export type AclEntry = S['AclEntryOut'];
export type Acl = S['AclOut'];
// Service-admin area: webhooks and integration tokens.
export type EventTypeName = Exclude<EventType, 'resync'>;
export type Webhook = S['WebhookOut'];
export type WebhookList = S['WebhookList'];
export type WebhookCreate = S['WebhookCreate'];
export type WebhookCreated = S['WebhookCreated'];
export type WebhookPatch = S['WebhookPatch'];
export type DeliveryStatus = S['DeliveryOut']['status'] & ('pending' | 'delivered' | 'failed');
export type Delivery = Omit<S['DeliveryOut'], 'status'> & { status: DeliveryStatus };
export type DeliveryList = { deliveries: Delivery[] } & Omit<S['DeliveryList'], 'deliveries'>;
export type Ping = S['PingOut'];
export type Token = S['TokenOut'];
export type TokenList = S['TokenList'];
export type TokenCreate = S['TokenCreate'];
export type TokenCreated = S['TokenCreated'];
