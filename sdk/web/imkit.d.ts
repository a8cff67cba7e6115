// TypeScript declarations of the IMKit Web SDK (imkit.js / imkit.mjs) and of the protocol
// objects it hands out (PROTOCOL.md, imkit.v1). Field names are the wire's, unchanged.

/** A JSON object as the server stores it (`meta`, `payload`). */
export type JsonObject = { [key: string]: unknown };

/** 1–64 bytes of `[A-Za-z0-9_.@:-]`. */
export type ClientId = string;
/** 1–64 bytes of `[A-Za-z0-9_.@:-]`. */
export type RoomId = string;
/** Milliseconds since the Unix epoch, server clock. */
export type Timestamp = number;

export type ConnectionState = "idle" | "connecting" | "open" | "reconnecting" | "closed";

/** A user of the website. */
export interface Client {
  id: ClientId;
  name: string;
  avatar: string | null;
  meta: JsonObject | null;
}

export interface ClientStatus {
  id: ClientId;
  online: boolean;
  last_seen: Timestamp | null;
}

/** `client.get` gives profiles with presence. */
export interface ClientWithStatus extends Client {
  online: boolean;
  last_seen: Timestamp | null;
}

export type RoomType = "direct" | "group";

export interface Room {
  id: RoomId;
  type: RoomType;
  name: string | null;
  cover: string | null;
  meta: JsonObject | null;
  /** null for a direct room. */
  owner: ClientId | null;
  members_count: number;
  created_at: Timestamp;
  updated_at: Timestamp;
  /** seq of the room's newest message, 0 when it has none. */
  last_seq: number;
}

export interface RoomMember {
  id: ClientId;
  role: "owner" | "member";
  joined_at: Timestamp;
}

export interface RoomWithMembers extends Room {
  members: RoomMember[];
}

/** `room.create` answers the room and whether it is new (a direct pair is made once). */
export interface CreatedRoom extends Room {
  created: boolean;
}

/** A room as the room list shows it (`room.list`, `room.joined`, `sync`). */
export interface RoomSummary extends Room {
  last_message: Message | null;
  /** Messages from others above the caller's read mark. */
  unread: number;
  /** The other member, for a direct room. */
  peer?: Client;
}

export type MessageType = "text" | "image" | "file" | "location" | "sticker" | "custom";

export interface Message {
  room: RoomId;
  /** Per-room sequence: 1, 2, 3, … with no gaps and no reuse. */
  seq: number;
  ts: Timestamp;
  from: ClientId;
  /** A recalled message keeps its seq, from and ts, and becomes `"recalled"`. */
  type: MessageType | "recalled";
  text?: string | null;
  payload?: JsonObject | null;
  cid: string;
  reply_to?: number | null;
  mentions?: ClientId[] | null;
  edited_at?: Timestamp | null;
  /** emoji → ids of the clients who reacted with it. */
  reactions?: { [emoji: string]: ClientId[] } | null;
}

/** What `send` takes besides a plain string. */
export interface OutgoingMessage {
  /** Default `"text"`. */
  type?: MessageType;
  /** Required for `"text"`. */
  text?: string;
  /** Required for the other types, e.g. `{ url, width, height }` for an image. */
  payload?: JsonObject;
  /** seq of the message answered. */
  reply_to?: number;
  mentions?: ClientId[];
  /** The idempotency key; made by the SDK when left out. 1–64 bytes of `[A-Za-z0-9_.@:-]`. */
  cid?: string;
}

export interface RoomPage {
  rooms: RoomSummary[];
  /** Pass as `before` for the next page; null on the last page. */
  next: string | null;
  /** Unread messages over all the client's rooms, not only this page. */
  unread_total: number;
}

export interface HistoryPage {
  /** Oldest first. */
  messages: Message[];
  /** Older messages exist (with `before` or neither), or newer ones (with `after`). */
  has_more: boolean;
}

export interface ReadAnswer {
  room: RoomId;
  seq: number;
  unread: number;
}

export interface Reactions {
  room: RoomId;
  seq: number;
  reactions: { [emoji: string]: ClientId[] };
}

export interface SyncAnswer {
  rooms: RoomSummary[];
  left: RoomId[];
  messages: { [room: string]: Message[] };
  has_more: { [room: string]: boolean };
}

/** The events a page can listen to: the protocol's events by their names, plus the SDK's. */
export interface IMKitEvents {
  /** Every stored message once, in seq order per room: live, or caught up after a gap or a reconnect. */
  message: Message;
  "message.edited": Message;
  "message.recalled": { room: RoomId; seq: number };
  "message.reacted": Reactions;
  /** The caller was added to a room (or created it). */
  "room.joined": RoomSummary;
  /** The caller left or was removed, or the room was deleted. */
  "room.left": { room: RoomId };
  "room.updated": Room;
  "member.joined": { room: RoomId; members: ClientId[] };
  "member.left": { room: RoomId; member: ClientId };
  /** A member's read mark moved (the caller's own included, e.g. from another tab). */
  read: { room: RoomId; client: ClientId; seq: number };
  /** Another member is typing; not repeated when they stop. */
  typing: { room: RoomId; client: ClientId };
  presence: { client: ClientId; online: boolean; last_seen: Timestamp | null };
  /** The connection state changed. */
  state: ConnectionState;
  /** Why the client closed by itself (then `code` is the reason), or a non-fatal oddity. */
  error: IMKitError;
}

/**
 * An Error with the protocol's error code (`bad_request`, `unauthenticated`, `forbidden`,
 * `not_found`, `conflict`, `too_large`, `rate_limited`, `unavailable`, `internal`) or one
 * of the SDK's own: `timeout` (no answer in 10 s), `disconnected` (the connection was lost
 * before the answer; only for requests other than msg.send, whose outcome is then
 * unknown), `closed` (the client is closed or was never connected), `bad_url`,
 * `bad_frame` (the server sent something that is not JSON).
 */
export interface IMKitError extends Error {
  code: string;
}

export interface IMKitOptions {
  /** The WebSocket endpoint, e.g. `"wss://chat.example.com/ws"`. */
  url: string;
  /**
   * The token to authenticate with, or a function giving one (sync or async). The function is
   * called at connect() and again, once, when the server refuses the token (close 4401/4403
   * or a refused auth). Surrounding whitespace is trimmed.
   */
  token: string | (() => string | Promise<string>);
  /** Reconnect after a lost connection, with backoff and jitter (0.5 s doubling to 30 s). Default true. */
  reconnect?: boolean;
  /** The WebSocket class; default `globalThis.WebSocket`. In Node 20 pass the `ws` package's. */
  WebSocket?: unknown;
  /** Requests whose frame is larger are refused locally with `too_large`. Default 65536, the server's default limit. */
  maxFrameBytes?: number;
}

export class IMKit {
  constructor(options: IMKitOptions);

  readonly state: ConnectionState;

  /** Connects and authenticates; resolves with the caller's profile. Transport failures are retried while `reconnect` is on. */
  connect(): Promise<Client>;
  /** Closes for good: pending requests reject with `closed`; a later connect() starts a new session. */
  close(): void;

  on<E extends keyof IMKitEvents>(event: E, listener: (data: IMKitEvents[E]) => void): this;
  off<E extends keyof IMKitEvents>(event: E, listener: (data: IMKitEvents[E]) => void): this;
  /** Any other event name the server may send. */
  on(event: string, listener: (data: any) => void): this;
  off(event: string, listener: (data: any) => void): this;

  /** The direct room with `peer`: the same room every time, from either side. */
  createDirect(peer: ClientId): Promise<CreatedRoom>;
  createGroup(options: { members: ClientId[]; name?: string; id?: RoomId; cover?: string; meta?: JsonObject }): Promise<CreatedRoom>;
  listRooms(options?: { limit?: number; before?: string | null }): Promise<RoomPage>;
  getRoom(room: RoomId): Promise<RoomWithMembers>;
  /** Group: owner only. `null` clears a field. */
  updateRoom(room: RoomId, fields: { name?: string | null; cover?: string | null; meta?: JsonObject | null }): Promise<Room>;
  addMembers(room: RoomId, members: ClientId[]): Promise<Room>;
  removeMembers(room: RoomId, members: ClientId[]): Promise<Room>;
  leave(room: RoomId): Promise<{}>;

  /**
   * Sends a message and resolves with it as stored (with seq, ts, from). While disconnected
   * it waits and goes out after reconnecting, with the same cid: stored once, settled once.
   */
  send(room: RoomId, content: string | OutgoingMessage): Promise<Message>;
  /** Give `before` or `after` (exclusive seqs), or neither for the newest messages. */
  history(room: RoomId, options?: { before?: number; after?: number; limit?: number }): Promise<HistoryPage>;
  markRead(room: RoomId, seq: number): Promise<ReadAnswer>;
  /** Tells the other members the caller is typing; at most once per 2 s per room, dropped while offline. */
  typing(room: RoomId): void;
  /** Sender only. */
  edit(room: RoomId, seq: number, fields: { text?: string; payload?: JsonObject }): Promise<Message>;
  /** Sender or the room's owner. */
  recall(room: RoomId, seq: number): Promise<{}>;
  /** `on` defaults to true; false removes the caller's reaction. */
  react(room: RoomId, seq: number, emoji: string, on?: boolean): Promise<Reactions>;

  updateMe(fields: { name?: string | null; avatar?: string | null; meta?: JsonObject | null }): Promise<Client>;
  /** Unknown ids are left out. */
  getClients(ids: ClientId[]): Promise<{ clients: ClientWithStatus[] }>;
  /** Replaces the watched set (at most 100); `presence` events follow. */
  watchPresence(ids: ClientId[]): Promise<{ clients: ClientStatus[] }>;

  /** Any protocol op, raw: resolves with the answer's `data`. */
  request(op: "sync", data: { known: { [room: string]: number } }): Promise<SyncAnswer>;
  request<T = any>(op: string, data?: JsonObject): Promise<T>;
}

declare global {
  interface Window {
    /** Defined by the classic script `imkit.js`. */
    IMKit: typeof IMKit;
  }
}
