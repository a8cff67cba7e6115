// The IMKit demo chat: sign in with a development token, then a room list and a chat view,
// all on the Web SDK. The gateway serves this folder at /demo/ and the SDK at /sdk/.
import { IMKit } from "/sdk/imkit.mjs";

const PAGE_SIZE = 30;
const MAX_ROOMS = 1000;
const TYPING_SHOWN_MS = 4000;
const ERROR_SHOWN_MS = 6000;
const NEAR_BOTTOM_PX = 80;
const SAVED_SIGNIN = "imkit-demo-signin";
const STATE_LABELS = {
  idle: "Offline",
  connecting: "Connecting…",
  open: "Online",
  reconnecting: "Reconnecting…",
  closed: "Offline",
};

const $ = (id) => document.getElementById(id);

// What the page knows. The DOM is drawn from it.
const session = {
  im: null,
  me: null,
  rooms: new Map(), // room id → room summary
  names: new Map(), // client id → display name
  readMarks: new Map(), // room id → Map(client id → highest seq read)
  view: null, // the open room: { id, messages: Map(seq → message), hasMore }
  typingTimer: null,
};

// --- small helpers ---

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) {
    node.className = className;
  }
  if (text !== undefined) {
    node.textContent = text;
  }
  return node;
}

function withTestId(node, testId) {
  node.dataset.testid = testId;
  return node;
}

function randomCid() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

function initials(name) {
  const words = String(name).trim().split(/[\s._@-]+/).filter(Boolean);
  return (words.length > 1 ? words[0][0] + words[1][0] : String(name).slice(0, 2)).toUpperCase();
}

// A stable pleasant hue per id, so each person and room keeps its colour.
function hueOf(id) {
  let hash = 0;
  for (const char of id) {
    hash = (hash * 31 + char.codePointAt(0)) % 360;
  }
  return hash;
}

function avatar(node, id, name) {
  node.textContent = initials(name);
  node.style.setProperty("--hue", hueOf(id));
  return node;
}

function formatTime(ts) {
  const date = new Date(ts);
  const now = new Date();
  if (date.toDateString() === now.toDateString()) {
    return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }
  if (now - date < 6 * 24 * 3600 * 1000) {
    return date.toLocaleDateString([], { weekday: "short" });
  }
  return date.toLocaleDateString([], { day: "numeric", month: "short" });
}

function nameOf(clientId) {
  if (clientId === session.me?.id) {
    return session.me.name || clientId;
  }
  return session.names.get(clientId) || clientId;
}

function isOwn(message) {
  return message.from === session.me.id;
}

function showError(node, message) {
  node.textContent = message;
  node.hidden = false;
}

// Errors of actions in the app fade after a while; sign-in errors stay until the next try.
function sidebarError(error) {
  const node = $("sidebar-error");
  showError(node, error.message || String(error));
  clearTimeout(node.hideTimer);
  node.hideTimer = setTimeout(() => (node.hidden = true), ERROR_SHOWN_MS);
}

// --- signing in and out ---

async function fetchToken(id, name) {
  const query = new URLSearchParams(name ? { id, name } : { id });
  const response = await fetch(`/dev/token?${query}`);
  if (response.status === 404) {
    throw new Error("This server hands out no demo tokens. Start it with dev.demo_tokens = on (for local use only).");
  }
  if (!response.ok) {
    throw new Error(`The token request failed (HTTP ${response.status}).`);
  }
  const { token } = await response.json();
  return token;
}

function socketUrl() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/ws`;
}

async function signIn(id, name) {
  const im = new IMKit({ url: socketUrl(), token: () => fetchToken(id, name) });
  session.im = im;
  listen(im);
  try {
    session.me = await im.connect();
  } catch (error) {
    im.close();
    session.im = null;
    throw error.cause ?? error; // the token fetch's own message is the one to show
  }
  localStorage.setItem(SAVED_SIGNIN, JSON.stringify({ id, name }));
  $("me").textContent = session.me.name || session.me.id;
  $("signin").hidden = true;
  $("app").hidden = false;
  loadRooms().catch(sidebarError);
}

function signOut(reason) {
  session.im?.close();
  Object.assign(session, { im: null, me: null, rooms: new Map(), names: new Map(), readMarks: new Map() });
  closeRoom();
  renderRooms();
  $("app").hidden = true;
  $("signin").hidden = false;
  $("signin-error").hidden = true;
  if (reason) {
    showError($("signin-error"), reason);
  }
}

async function onSignInSubmit(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const id = form.elements.id.value.trim();
  const name = form.elements.name.value.trim();
  const button = form.querySelector("button");
  button.disabled = true;
  $("signin-error").hidden = true;
  try {
    await signIn(id, name);
  } catch (error) {
    showError($("signin-error"), error.message);
  } finally {
    button.disabled = false;
  }
}

function prefillSignIn() {
  const saved = JSON.parse(localStorage.getItem(SAVED_SIGNIN) || "null");
  const form = $("signin-form");
  if (saved) {
    form.elements.id.value = saved.id;
    form.elements.name.value = saved.name;
  }
}

// --- SDK events ---

function listen(im) {
  let wasOpen = false;
  im.on("state", (state) => {
    renderConnection(state);
    // Unread counts and previews changed while offline: the list is reloaded; the SDK
    // itself delivers the missed messages as `message` events.
    if (state === "open" && wasOpen) {
      loadRooms().then(markViewRead).catch(sidebarError);
    }
    wasOpen ||= state === "open";
  });
  im.on("error", (error) => {
    if (im.state === "closed" && session.im === im) {
      signOut(`Disconnected: ${error.message}`);
    } else {
      console.warn("IMKit:", error);
    }
  });
  im.on("message", onMessage);
  im.on("message.edited", onMessageChanged);
  im.on("message.recalled", ({ room, seq }) => onMessageChanged({ ...findMessage(room, seq), room, seq, type: "recalled", text: null, payload: null }));
  im.on("message.reacted", ({ room, seq, reactions }) => onMessageChanged({ ...findMessage(room, seq), room, seq, reactions }));
  im.on("room.joined", onRoomJoined);
  im.on("room.left", onRoomLeft);
  im.on("room.updated", onRoomUpdated);
  im.on("member.joined", onMembersChanged);
  im.on("member.left", onMembersChanged);
  im.on("read", onRead);
  im.on("typing", onTyping);
}

function renderConnection(state) {
  const indicator = $("conn");
  indicator.dataset.state = state;
  indicator.textContent = STATE_LABELS[state] ?? state;
}

// Updates the room's summary with a message; a message the summary already counts (seq not
// above its last_seq, e.g. one caught up after a reconnect) changes nothing.
function noteInSummary(message) {
  const summary = session.rooms.get(message.room);
  if (!summary || message.seq <= summary.last_seq) {
    return;
  }
  summary.last_seq = message.seq;
  summary.last_message = message;
  if (!isOwn(message) && !isBeingRead(message.room)) {
    summary.unread += 1;
  }
  renderRooms();
  if (!isOwn(message)) {
    markViewRead();
  }
}

function onMessage(message) {
  if (!session.rooms.has(message.room)) {
    loadRooms().catch(sidebarError); // a room we have not listed yet
  }
  noteInSummary(message);
  if (session.view?.id !== message.room) {
    return;
  }
  showMessage(message);
  if (!isOwn(message)) {
    hideTyping();
    ensureNames([message.from]).catch(sidebarError);
    markViewRead();
  }
}

function onMessageChanged(message) {
  const summary = session.rooms.get(message.room);
  if (summary?.last_message?.seq === message.seq) {
    summary.last_message = { ...summary.last_message, ...message };
    renderRooms();
  }
  if (session.view?.id === message.room && session.view.messages.has(message.seq)) {
    showMessage(message);
  }
}

function findMessage(room, seq) {
  return session.view?.id === room ? session.view.messages.get(seq) : undefined;
}

function onRoomJoined(summary) {
  session.rooms.set(summary.id, summary);
  learnNames(summary);
  renderRooms();
}

function onRoomLeft({ room }) {
  session.rooms.delete(room);
  if (session.view?.id === room) {
    closeRoom();
  }
  renderRooms();
}

function onRoomUpdated(room) {
  const summary = session.rooms.get(room.id);
  if (summary) {
    Object.assign(summary, room);
    renderRooms();
    renderHeader();
  }
}

function onMembersChanged({ room }) {
  if (session.view?.id !== room) {
    return;
  }
  session.im.getRoom(room).then(onRoomUpdated, sidebarError);
}

function onRead({ room, client, seq }) {
  if (client === session.me.id) {
    // Read in another tab or window.
    const summary = session.rooms.get(room);
    if (summary && seq >= summary.last_seq) {
      summary.unread = 0;
      renderRooms();
    }
    return;
  }
  const marks = session.readMarks.get(room) ?? new Map();
  marks.set(client, Math.max(seq, marks.get(client) ?? 0));
  session.readMarks.set(room, marks);
  if (session.view?.id === room) {
    refreshReadMarks();
  }
}

function onTyping({ room, client }) {
  if (session.view?.id !== room || client === session.me.id) {
    return;
  }
  $("typing").textContent = `${nameOf(client)} is typing…`;
  clearTimeout(session.typingTimer);
  session.typingTimer = setTimeout(hideTyping, TYPING_SHOWN_MS);
}

function hideTyping() {
  clearTimeout(session.typingTimer);
  $("typing").textContent = "";
}

// --- the room list ---

async function loadRooms() {
  const rooms = new Map();
  let before;
  do {
    const page = await session.im.listRooms({ limit: 100, before });
    for (const summary of page.rooms) {
      rooms.set(summary.id, summary);
      learnNames(summary);
    }
    before = page.next ?? undefined;
  } while (before && rooms.size < MAX_ROOMS);
  session.rooms = rooms;
  renderRooms();
  if (session.view && !rooms.has(session.view.id)) {
    closeRoom();
  }
}

function learnNames(summary) {
  if (summary.peer) {
    session.names.set(summary.peer.id, summary.peer.name);
  }
}

async function ensureNames(ids) {
  const missing = [...new Set(ids)].filter((id) => id !== session.me.id && !session.names.has(id));
  if (missing.length === 0) {
    return;
  }
  missing.forEach((id) => session.names.set(id, id)); // asked once
  const { clients } = await session.im.getClients(missing.slice(0, 100));
  for (const client of clients) {
    session.names.set(client.id, client.name);
  }
  if (session.view) {
    session.view.messages.forEach((message) => missing.includes(message.from) && showMessage(message));
  }
}

function roomTitle(summary) {
  if (summary.type === "direct") {
    return summary.peer?.name || summary.peer?.id || "Direct chat";
  }
  return summary.name || `Group ${summary.id}`;
}

function activity(summary) {
  return summary.last_message?.ts ?? summary.created_at;
}

// Newest activity first, ties by room id: the server's room.list order.
function byActivity(a, b) {
  return activity(b) - activity(a) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

function preview(message) {
  if (!message) {
    return "No messages yet";
  }
  const who = isOwn(message) ? "You: " : "";
  return who + messageSummary(message);
}

function messageSummary(message) {
  switch (message.type) {
    case "text":
      return message.text ?? "";
    case "recalled":
      return "Message recalled";
    case "image":
      return "📷 Photo";
    case "file":
      return "📎 File";
    case "location":
      return "📍 Location";
    case "sticker":
      return "Sticker";
    default:
      return `[${message.type}]`;
  }
}

function roomItem(summary) {
  const item = withTestId(el("li", "room"), "room-item");
  item.dataset.room = summary.id;
  item.tabIndex = 0;
  item.setAttribute("role", "button");
  item.classList.toggle("active", session.view?.id === summary.id);
  item.classList.toggle("has-unread", summary.unread > 0);

  const title = roomTitle(summary);
  const body = el("span", "room-body");
  const top = el("span", "room-row");
  top.append(withTestId(el("span", "room-name", title), "room-name"));
  if (summary.last_message || summary.created_at) {
    top.append(withTestId(el("time", "room-time", formatTime(activity(summary))), "room-time"));
  }
  const bottom = el("span", "room-row");
  bottom.append(withTestId(el("span", "room-preview", preview(summary.last_message)), "room-preview"));
  if (summary.unread > 0) {
    bottom.append(withTestId(el("span", "badge", summary.unread > 99 ? "99+" : String(summary.unread)), "unread-badge"));
  }
  body.append(top, bottom);
  item.append(avatar(el("span", "avatar"), summary.peer?.id ?? summary.id, title), body);
  return item;
}

function renderRooms() {
  const sorted = [...session.rooms.values()].sort(byActivity);
  $("rooms").replaceChildren(...sorted.map(roomItem));
  $("rooms-empty").hidden = sorted.length > 0;
  const unread = sorted.reduce((total, summary) => total + summary.unread, 0);
  document.title = unread > 0 ? `(${unread}) IMKit demo` : "IMKit demo";
}

function onRoomListActivate(event) {
  if (event.type === "keydown" && event.key !== "Enter" && event.key !== " ") {
    return;
  }
  const item = event.target.closest("[data-room]");
  if (item) {
    event.preventDefault();
    openRoom(item.dataset.room).catch(sidebarError);
  }
}

async function startDirect(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const peer = form.elements.peer.value.trim();
  const room = await session.im.createDirect(peer);
  form.reset();
  await showRoom(room.id);
}

async function startGroup(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const members = form.elements.members.value.split(",").map((id) => id.trim()).filter((id) => id && id !== session.me.id);
  const room = await session.im.createGroup({ name: form.elements.name.value.trim(), members });
  form.reset();
  await showRoom(room.id);
}

// Opens a room just created or found, listing it first if its room.joined has not come yet.
async function showRoom(roomId) {
  if (!session.rooms.has(roomId)) {
    await loadRooms();
  }
  await openRoom(roomId);
}

// --- the chat view ---

function isBeingRead(roomId) {
  return session.view?.id === roomId && document.visibilityState === "visible";
}

async function openRoom(roomId) {
  session.view = { id: roomId, messages: new Map(), hasMore: false };
  $("messages").replaceChildren();
  hideTyping();
  $("app").classList.add("in-chat");
  for (const id of ["chat-header", "scroller", "composer"]) {
    $(id).hidden = false;
  }
  $("placeholder").hidden = true;
  renderHeader();
  renderRooms();
  $("composer").elements.text.focus();

  const page = await session.im.history(roomId, { limit: PAGE_SIZE });
  if (session.view?.id !== roomId) {
    return; // another room was opened meanwhile
  }
  page.messages.forEach(showMessage);
  setHasMore(page.has_more);
  scrollToBottom();
  markViewRead();
  ensureNames(page.messages.map((message) => message.from)).catch(sidebarError);
}

function closeRoom() {
  session.view = null;
  hideTyping();
  $("app").classList.remove("in-chat");
  for (const id of ["chat-header", "scroller", "composer"]) {
    $(id).hidden = true;
  }
  $("placeholder").hidden = false;
  $("messages").replaceChildren();
  renderRooms();
}

function renderHeader() {
  const summary = session.rooms.get(session.view?.id);
  if (!summary) {
    return;
  }
  const title = roomTitle(summary);
  $("chat-title").textContent = title;
  $("chat-subtitle").textContent =
    summary.type === "direct" ? `@${summary.peer?.id ?? ""}` : `${summary.members_count} members`;
  avatar($("chat-avatar"), summary.peer?.id ?? summary.id, title);
}

function setHasMore(hasMore) {
  session.view.hasMore = hasMore;
  $("load-older").hidden = !hasMore;
  $("messages-empty").hidden = session.view.messages.size > 0 || hasMore;
}

async function loadOlder() {
  const view = session.view;
  const oldest = Math.min(...view.messages.keys());
  const scroller = $("scroller");
  const fromBottom = scroller.scrollHeight - scroller.scrollTop;
  const button = $("load-older");
  button.disabled = true;
  try {
    const page = await session.im.history(view.id, { before: oldest, limit: PAGE_SIZE });
    if (session.view !== view) {
      return;
    }
    page.messages.forEach(showMessage);
    setHasMore(page.has_more);
    scroller.scrollTop = scroller.scrollHeight - fromBottom; // keep what was on screen in place
    ensureNames(page.messages.map((message) => message.from)).catch(sidebarError);
  } finally {
    button.disabled = false;
  }
}

// Marks the open room read up to its last message, once per new message: `marked` is the
// seq last sent, whatever the unread count says (a message arriving in the open chat never
// counts as unread here, yet the server must still hear that it was read).
function markViewRead() {
  const summary = session.rooms.get(session.view?.id);
  if (!summary || !isBeingRead(summary.id) || summary.last_seq === 0 ||
      (summary.marked ?? 0) >= summary.last_seq) {
    return;
  }
  summary.unread = 0;
  summary.marked = summary.last_seq;
  renderRooms();
  session.im.markRead(summary.id, summary.last_seq).catch(sidebarError);
}

function isNearBottom() {
  const scroller = $("scroller");
  return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < NEAR_BOTTOM_PX;
}

function scrollToBottom() {
  const scroller = $("scroller");
  scroller.scrollTop = scroller.scrollHeight;
}

// Inserts or redraws a message in seq order; bubbles still being sent stay last.
function showMessage(message) {
  const view = session.view;
  view.messages.set(message.seq, message);
  const list = $("messages");
  const item = messageItem(message);
  const stick = isNearBottom();
  list.querySelector(`[data-cid="${CSS.escape(message.cid ?? "")}"]`)?.remove();
  const existing = list.querySelector(`[data-seq="${message.seq}"]`);
  if (existing) {
    existing.replaceWith(item);
  } else {
    const after = [...list.children].find((node) => !node.dataset.seq || Number(node.dataset.seq) > message.seq);
    list.insertBefore(item, after ?? null);
  }
  markRun(item);
  markRun(item.nextElementSibling);
  $("messages-empty").hidden = true;
  if (stick) {
    scrollToBottom();
  }
}

// Flags a message that follows one from the same sender, so its name is not repeated.
function markRun(item) {
  item?.classList.toggle("continued", item.previousElementSibling?.dataset.from === item.dataset.from);
}

function messageItem(message) {
  const own = isOwn(message);
  const summary = session.rooms.get(message.room);
  const item = withTestId(el("li", own ? "msg own" : "msg"), "message-item");
  item.dataset.seq = message.seq;
  item.dataset.from = message.from;
  if (!own && summary?.type === "group") {
    item.append(el("span", "sender", nameOf(message.from)));
  }
  item.append(bubble(message));
  const meta = el("span", "meta");
  meta.append(el("time", "", formatTime(message.ts)));
  if (message.edited_at && message.type !== "recalled") {
    meta.append(el("span", "", "edited"));
  }
  const reactions = Object.entries(message.reactions ?? {}).filter(([, who]) => who.length > 0);
  for (const [emoji, who] of reactions) {
    meta.append(el("span", "reaction", `${emoji} ${who.length}`));
  }
  const read = own ? readLabel(message) : "";
  if (read) {
    meta.append(withTestId(el("span", "read", read), "read-mark"));
  }
  item.append(meta);
  return item;
}

function bubble(message) {
  const node = el("div", "bubble");
  const url = message.payload?.url;
  if (message.type === "recalled") {
    node.classList.add("recalled");
    node.textContent = "Message recalled";
  } else if (message.type === "image" && typeof url === "string" && /^https?:\/\//.test(url)) {
    const image = el("img");
    image.src = url;
    image.alt = "Image";
    image.loading = "lazy";
    node.append(image);
  } else {
    node.textContent = message.type === "text" ? message.text ?? "" : messageSummary(message);
  }
  return node;
}

// "Read" for a direct room, "Read by n" for a group, from the `read` events seen so far.
function readLabel(message) {
  const marks = session.readMarks.get(message.room);
  if (!marks) {
    return "";
  }
  const readers = [...marks].filter(([client, seq]) => client !== session.me.id && seq >= message.seq).length;
  if (readers === 0) {
    return "";
  }
  const summary = session.rooms.get(message.room);
  return summary?.type === "group" ? `Read by ${readers}` : "Read";
}

function refreshReadMarks() {
  for (const message of session.view.messages.values()) {
    if (isOwn(message)) {
      showMessage(message);
    }
  }
}

// --- sending ---

function pendingItem(text, cid) {
  const item = withTestId(el("li", "msg own pending"), "message-item");
  item.dataset.cid = cid;
  item.dataset.from = session.me.id;
  item.append(el("div", "bubble", text), el("span", "meta", "Sending…"));
  return item;
}

async function onComposerSubmit(event) {
  event.preventDefault();
  const input = event.currentTarget.elements.text;
  const text = input.value.trim();
  if (!text || !session.view) {
    return;
  }
  input.value = "";
  const room = session.view.id;
  const cid = randomCid();
  const pending = pendingItem(text, cid);
  $("messages").append(pending);
  markRun(pending);
  $("messages-empty").hidden = true;
  scrollToBottom();
  try {
    const message = await session.im.send(room, { text, cid });
    noteInSummary(message);
    if (session.view?.id === room) {
      showMessage(message);
    }
  } catch (error) {
    pending.classList.replace("pending", "failed");
    pending.querySelector(".meta").textContent = `Not sent: ${error.message}`;
  }
}

function onComposerInput() {
  if (session.view && $("composer").elements.text.value) {
    session.im.typing(session.view.id);
  }
}

// --- wiring ---

function catching(handler) {
  return (event) => Promise.resolve(handler(event)).catch(sidebarError);
}

function start() {
  prefillSignIn();
  $("signin-form").addEventListener("submit", onSignInSubmit);
  $("signout").addEventListener("click", () => signOut());
  $("new-direct").addEventListener("submit", catching(startDirect));
  $("new-group").addEventListener("submit", catching(startGroup));
  $("rooms").addEventListener("click", onRoomListActivate);
  $("rooms").addEventListener("keydown", onRoomListActivate);
  $("load-older").addEventListener("click", catching(loadOlder));
  $("back").addEventListener("click", closeRoom);
  $("composer").addEventListener("submit", onComposerSubmit);
  $("composer").elements.text.addEventListener("input", onComposerInput);
  document.addEventListener("visibilitychange", markViewRead);
}

start();
