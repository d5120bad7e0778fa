// The web chat: talks to the chatwright HTTP API, streams replies over Server-Sent Events parsed from fetch
// (EventSource cannot POST), and keeps the conversation id in localStorage so a reload restores it.
"use strict";

const STORAGE_KEY = "chatwright.conversation";
const CONNECTION_LOST = "The connection was interrupted. Your message was received; reload to see the reply.";

const state = {
  conversationId: localStorage.getItem(STORAGE_KEY),
  busy: false,
  epoch: 0, // bumped by "New conversation" so a reply still streaming for the old one is ignored
};

const $ = (id) => document.getElementById(id);

// Thumb icon drawn inline (Material Icons "thumb_up", Apache-2.0), so it shows without emoji fonts or network.
const THUMB_PATH = "M1 21h4V9H1v12zm22-11c0-1.1-.9-2-2-2h-6.31l.95-4.57.03-.32c0-.41-.17-.79-.44-1.06L14.17 1 "
  + "7.59 7.59C7.22 7.95 7 8.45 7 9v10c0 1.1.9 2 2 2h9c.83 0 1.54-.5 1.84-1.22l3.02-7.05c.09-.23.14-.47.14-.73v-2z";

function thumbIcon(pointingDown) {
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  const path = document.createElementNS("http://www.w3.org/2000/svg", "path");
  path.setAttribute("d", THUMB_PATH);
  if (pointingDown) path.setAttribute("transform", "rotate(180 12 12)");
  svg.append(path);
  return svg;
}

function element(tag, attributes = {}, children = []) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === "text") node.textContent = value;
    else if (name === "className") node.className = value;
    else node.setAttribute(name, value);
  }
  for (const child of children) node.append(child);
  return node;
}

class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

async function api(path, options = {}) {
  const response = await fetch(path, {
    ...options,
    headers: { "Content-Type": "application/json", Accept: "application/json", ...(options.headers || {}) },
  });
  if (!response.ok) throw new ApiError(await errorDetail(response), response.status);
  return response.json();
}

async function errorDetail(response) {
  try {
    const body = await response.json();
    if (typeof body.detail === "string") return body.detail;
    if (Array.isArray(body.detail)) return body.detail.map((item) => item.msg).join("; ");
  } catch (_) {
    // not JSON: fall through to the status text
  }
  return `The server answered ${response.status} ${response.statusText}.`;
}

// ---- rendering -------------------------------------------------------------------------------------------

function showComposerError(message) {
  const box = $("composer-error");
  box.textContent = message || "";
  box.hidden = !message;
}

function scrollToEnd() {
  const list = $("messages");
  list.scrollTop = list.scrollHeight;
}

function appendMessage(role) {
  $("empty-state").hidden = true;
  const bubble = element("div", { className: "bubble", "data-testid": `${role}-text` });
  const message = element("article", { className: `message ${role}`, "data-testid": `${role}-message` }, [bubble]);
  $("messages").append(message);
  scrollToEnd();
  return message;
}

function renderUserTurn(text) {
  appendMessage("user").querySelector(".bubble").textContent = text;
}

// Reply text with each [n] that names a citation turned into a link that opens the cited passage.
function renderReplyText(bubble, text, citations) {
  const byIndex = new Map(citations.map((citation) => [citation.index, citation]));
  bubble.replaceChildren();
  let last = 0;
  for (const match of text.matchAll(/\[(\d+)\]/g)) {
    const citation = byIndex.get(Number(match[1]));
    if (!citation) continue;
    bubble.append(text.slice(last, match.index));
    const link = element("a", {
      href: "#", className: "cite", "data-testid": "citation-link", "data-citation-index": citation.index,
      "aria-label": `Source ${citation.index}: ${citation.title}`, text: match[0],
    });
    link.addEventListener("click", (event) => { event.preventDefault(); openCitation(citation); });
    bubble.append(link);
    last = match.index + match[0].length;
  }
  bubble.append(text.slice(last));
}

function renderSources(message, citations) {
  if (!citations.length) return;
  const list = element("ol", { className: "sources", "data-testid": "sources", "aria-label": "Sources" });
  for (const citation of citations) {
    const label = [citation.title, ...citation.heading_path.slice(-1)].filter(Boolean).join(" › ");
    const button = element("button", {
      type: "button", className: "source-link", "data-testid": "source-link", title: label,
      text: `[${citation.index}] ${label}`,
    });
    button.addEventListener("click", () => openCitation(citation));
    list.append(element("li", {}, [button]));
  }
  message.append(list);
}

function renderAssistantTurn(message, turn) {
  const bubble = message.querySelector(".bubble");
  bubble.removeAttribute("aria-busy");
  renderReplyText(bubble, turn.text, turn.citations);
  message.dataset.turnId = turn.id;
  if (turn.error) message.dataset.error = "true";
  renderSources(message, turn.citations);
  renderFeedback(message, turn);
  scrollToEnd();
}

function openCitation(citation) {
  $("citation-title").textContent = `[${citation.index}] ${citation.title}`;
  $("citation-path").textContent = citation.heading_path.join(" › ");
  $("citation-path").hidden = !citation.heading_path.length;
  $("citation-text").textContent = citation.text;
  $("citation-source").textContent = `Source: ${citation.source}`;
  $("citation-dialog").showModal();
}

// ---- feedback --------------------------------------------------------------------------------------------

function renderFeedback(message, turn) {
  const box = element("div", { className: "feedback", "data-testid": "feedback" });
  const buttons = [["up", "Helpful"], ["down", "Not helpful"]].map(([rating, label]) => {
    const button = element("button", {
      type: "button", className: "rating", "data-testid": `feedback-${rating}`, "data-rating": rating,
      "aria-label": label, "aria-pressed": "false", title: label,
    }, [thumbIcon(rating === "down")]);
    button.addEventListener("click", () => sendRating(box, turn.id, rating));
    return button;
  });
  box.append(...buttons);
  message.append(box);
  const given = turn.feedback && turn.feedback[turn.feedback.length - 1];
  if (given) markRated(box, given.rating, given.comment);
}

function markRated(box, rating, commented) {
  for (const button of box.querySelectorAll(".rating")) {
    button.setAttribute("aria-pressed", String(button.dataset.rating === rating));
    button.disabled = true;
  }
  box.querySelector(".feedback-comment")?.remove();
  box.querySelector(".inline-error")?.remove();
  let thanks = box.querySelector(".feedback-thanks");
  if (!thanks) {
    thanks = element("span", { className: "feedback-thanks", "data-testid": "feedback-thanks", role: "status" });
    box.append(thanks);
  }
  thanks.textContent = commented ? "Thanks for your feedback and comment" : "Thanks for your feedback";
}

async function sendRating(box, turnId, rating, comment) {
  try {
    await api(`/api/turns/${turnId}/feedback`, { method: "POST", body: JSON.stringify({ rating, comment }) });
  } catch (error) {
    showFeedbackError(box, error.message);
    return;
  }
  markRated(box, rating, comment);
  if (!comment) offerComment(box, turnId, rating);
}

function offerComment(box, turnId, rating) {
  const input = element("textarea", {
    rows: "1", placeholder: "Add a comment (optional)", "aria-label": "Comment on this reply",
    "data-testid": "feedback-comment",
  });
  const send = element("button", {
    type: "submit", className: "button secondary", "data-testid": "feedback-comment-send", text: "Send",
  });
  const form = element("form", { className: "feedback-comment" }, [input, send]);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const comment = input.value.trim();
    if (comment) sendRating(box, turnId, rating, comment);
  });
  box.append(form);
}

function showFeedbackError(box, message) {
  box.querySelector(".inline-error")?.remove();
  box.append(element("p", { className: "inline-error", role: "alert", text: message }));
}

// ---- sending and streaming -------------------------------------------------------------------------------

async function ensureConversation() {
  if (state.conversationId) return state.conversationId;
  const created = await api("/api/conversations", { method: "POST" });
  state.conversationId = created.id;
  localStorage.setItem(STORAGE_KEY, created.id);
  return created.id;
}

// Yields {event, data} for each Server-Sent Event in a fetch response body.
async function* serverSentEvents(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true }).replace(/\r\n/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
      }
      if (data.length) yield { event, data: JSON.parse(data.join("\n")) };
    }
  }
}

async function send(text) {
  const epoch = state.epoch;
  state.busy = true;
  updateSendButton();
  showComposerError("");
  try {
    const conversationId = await ensureConversation();
    const response = await fetch(`/api/conversations/${conversationId}/messages`, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
      body: JSON.stringify({ text }),
    });
    if (response.status === 404) {
      forgetConversation();
      clearMessages();
      throw new Error("That conversation no longer exists. Send your message again to start a new one.");
    }
    if (!response.ok) throw new Error(await errorDetail(response));
    $("message-input").value = "";
    resizeInput();
    renderUserTurn(text);
    await streamReply(response, appendMessage("assistant"), epoch);
  } catch (error) {
    if (epoch === state.epoch) showComposerError(error.message);
  } finally {
    if (epoch === state.epoch) {
      state.busy = false;
      updateSendButton();
    }
  }
}

async function streamReply(response, message, epoch) {
  const bubble = message.querySelector(".bubble");
  bubble.setAttribute("aria-busy", "true");
  let finished = false;
  try {
    for await (const { event, data } of serverSentEvents(response)) {
      if (epoch !== state.epoch) return;
      if (event === "token") {
        bubble.append(data.text);
        scrollToEnd();
      } else if (event === "done") {
        renderAssistantTurn(message, data.turn);
        finished = true;
      } else if (event === "error") {
        throw new Error(data.detail);
      }
    }
    if (!finished) throw new Error(CONNECTION_LOST);
  } catch (error) {
    bubble.removeAttribute("aria-busy");
    message.append(element("p", { className: "inline-error", role: "alert", "data-testid": "reply-error",
                                  text: error.message || CONNECTION_LOST }));
  }
}

// ---- conversation lifecycle ------------------------------------------------------------------------------

function forgetConversation() {
  state.conversationId = null;
  localStorage.removeItem(STORAGE_KEY);
}

function clearMessages() {
  for (const message of $("messages").querySelectorAll(".message")) message.remove();
  $("empty-state").hidden = false;
}

function startNewConversation() {
  state.epoch += 1;
  state.busy = false;
  forgetConversation();
  clearMessages();
  showComposerError("");
  updateSendButton();
  $("message-input").focus();
}

async function restoreConversation() {
  if (!state.conversationId) return;
  let conversation;
  try {
    conversation = await api(`/api/conversations/${state.conversationId}`);
  } catch (error) {
    if (error.status === 404) forgetConversation();
    else showComposerError(`The conversation could not be loaded: ${error.message}`);
    return;
  }
  for (const turn of conversation.turns) {
    if (turn.role === "user") renderUserTurn(turn.text);
    else renderAssistantTurn(appendMessage("assistant"), turn);
  }
}

async function loadAssistant() {
  try {
    const health = await api("/api/health");
    $("assistant-name").textContent = health.assistant;
    $("avatar").textContent = health.assistant.trim().charAt(0).toUpperCase();
    document.title = `${health.assistant} · chat`;
  } catch (error) {
    showComposerError(`The assistant is not reachable: ${error.message}`);
  }
}

// ---- composer --------------------------------------------------------------------------------------------

function updateSendButton() {
  $("send").disabled = state.busy || !$("message-input").value.trim();
}

function resizeInput() {
  const input = $("message-input");
  input.style.height = "auto";
  const borders = input.offsetHeight - input.clientHeight;
  input.style.height = `${input.scrollHeight + borders}px`;
  input.style.overflowY = input.scrollHeight > input.clientHeight ? "auto" : "hidden";
}

function setUp() {
  const input = $("message-input");
  $("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (text && !state.busy) send(text);
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      $("composer").requestSubmit();
    }
  });
  input.addEventListener("input", () => { resizeInput(); updateSendButton(); });
  $("new-conversation").addEventListener("click", startNewConversation);
  const dialog = $("citation-dialog");
  $("citation-close").addEventListener("click", () => dialog.close());
  dialog.addEventListener("click", (event) => { // a click on the backdrop closes the dialog
    const box = dialog.getBoundingClientRect();
    const inside = event.clientX >= box.left && event.clientX <= box.right
      && event.clientY >= box.top && event.clientY <= box.bottom;
    if (!inside) dialog.close();
  });
  updateSendButton();
  loadAssistant();
  restoreConversation();
}

document.addEventListener("DOMContentLoaded", setUp);
