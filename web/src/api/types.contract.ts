/**
 * Hand-written API types, transcribed from docs/CONTRACT.md §5 (v1).
 *
 * Replaced by the OpenAPI-generated types (`npm run gen:types` → schema.d.ts, mapped in
 * types.generated.ts) by changing the one export line in ./types.ts. Keep names identical.
 */

/** RFC 4314 rights string, letters in the order `lrswipkxtea`, e.g. "lrsw". */
export type Rights = string;

export type MessageStatus = 'pending' | 'answered' | 'deleted';
export type StatusFilter = MessageStatus | 'any';
export type SortOrder = 'oldest' | 'newest';
export type SyncState = 'live' | 'polling' | 'connecting' | 'error';

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail?: string | null;
}

export interface User {
  username: string;
  admin: boolean;
}

export interface SessionRequest {
  username: string;
  password: string;
}

export interface SessionResponse {
  token: string;
  expires_at: string;
  user: User;
}

export interface Me {
  username: string;
  admin: boolean;
  scopes: string[];
}

export interface FolderCounts {
  total: number;
  pending: number;
  answered: number;
  flagged: number;
  deleted: number;
}

export interface FolderSync {
  state: SyncState;
  last_synced_at: string | null;
  error: string | null;
}

export interface Folder {
  id: string;
  name: string;
  imap_name: string;
  counts: FolderCounts;
  my_rights: Rights;
  sync: FolderSync;
}

export interface FolderList {
  folders: Folder[];
}

export interface Address {
  name: string | null;
  address: string | null;
}

export interface Message {
  id: string;
  folder_id: string;
  uid: number;
  message_id: string | null;
  subject: string | null;
  from: Address | null;
  to: Address[];
  date: string | null;
  received_at: string;
  size: number;
  flags: string[];
  status: MessageStatus;
  flagged: boolean;
  seen: boolean;
  etag: string;
  first_seen_at: string;
  answered_at: string | null;
  updated_at: string;
}

export interface MessagePage {
  messages: Message[];
  next_cursor: string | null;
}

export interface MessagePatch {
  answered?: boolean;
  flagged?: boolean;
  seen?: boolean;
}

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

export interface MessageUpdatedData {
  before: { flags: string[] };
  after: { flags: string[]; status: MessageStatus; flagged: boolean; seen: boolean };
  actor: string | null;
}

export interface FlagpostEvent {
  id: number | string;
  type: EventType | (string & {});
  at: string;
  folder_id: string | null;
  message_id?: string | null;
  // The shape depends on `type`: see MessageUpdatedData, `{message}` for message.added.
  data: Record<string, unknown> | null;
}

export interface MessageDetail extends Message {
  history: FlagpostEvent[];
}

export interface EventPage {
  events: FlagpostEvent[];
  next_after: number | string;
}

export interface AclEntry {
  identifier: string;
  rights: Rights;
}

export interface Acl {
  entries: AclEntry[];
  my_rights: Rights;
}

// Service-admin area: webhooks and integration tokens.
export type EventTypeName = Exclude<EventType, 'resync'>;

export interface Webhook {
  id: string;
  url: string;
  identity: string;
  /** null: every event type */
  events?: string[] | null;
  /** folder ids; null: every folder the identity may read */
  folders?: string[] | null;
  enabled: boolean;
  disabled_reason?: string | null;
  created_at: string;
}

export interface WebhookList {
  webhooks: Webhook[];
}

export interface WebhookCreate {
  url: string;
  identity?: string | null;
  events?: string[] | null;
  folders?: string[] | null;
}

export interface WebhookCreated extends Webhook {
  /** `whsec_…`, shown only in this answer */
  secret: string;
}

export interface WebhookPatch {
  url?: string | null;
  events?: string[] | null;
  folders?: string[] | null;
  enabled?: boolean | null;
}

export type DeliveryStatus = 'pending' | 'delivered' | 'failed';

export interface Delivery {
  id: string;
  event_id: number;
  attempt: number;
  status: DeliveryStatus;
  response_status?: number | null;
  response_body?: string | null;
  error?: string | null;
  duration_ms?: number | null;
  at?: string | null;
  next_attempt_at?: string | null;
}

export interface DeliveryList {
  deliveries: Delivery[];
}

export interface Ping {
  delivered: boolean;
  response_status?: number | null;
  error?: string | null;
  duration_ms: number;
}

export interface Token {
  id: string;
  name: string;
  identity: string;
  scopes: string[];
  created_at: string;
  last_used_at?: string | null;
  expires_at?: string | null;
}

export interface TokenList {
  tokens: Token[];
}

export interface TokenCreate {
  name: string;
  identity: string;
  scopes: string[];
  expires_at?: string | null;
}

export interface TokenCreated extends Token {
  /** the secret, shown only in this answer */
  token: string;
}
