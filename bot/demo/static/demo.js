// licensebot demo page: a small Slack-like client for the local simulation.
//
// It renders what the bot really posted (Block Kit, as stored by the simulated Slack Web API)
// and sends what a Slack client would: slash commands, block_actions, view submissions. The
// demo server plays Slack's servers (it signs and POSTs to the bot); this page signs nothing.
//
// Safety rule for the whole file: text from the server is either put in the DOM with
// textContent, or goes through mrkdwn(), which escapes every character it does not itself emit.
"use strict";

(() => {
  const API = "/demo/api";
  const POLL_MS = 700;
  const BOT_NAME = "licensebot";
  const REQUIRED_MESSAGE = "Please complete this required field.";
  // The state names a channel only to its members, but the bot mentions the IT channel to
  // everyone (docs/demo.md, "Seeded company").
  const SEEDED_CHANNELS = { C0DEMOIT1: "it-licenses" };
  // Shortcodes the bot writes, and a few common ones; unknown codes stay as typed, like Slack.
  const EMOJI = {
    "+1": "👍", "-1": "👎", alarm_clock: "⏰", arrow_up: "⬆️", bar_chart: "📊", bell: "🔔",
    calendar: "📅", clipboard: "📋", email: "📧", gear: "⚙️", heavy_check_mark: "✔️",
    hourglass: "⌛", hourglass_flowing_sand: "⏳", inbox_tray: "📥", information_source: "ℹ️",
    key: "🔑", lock: "🔒", mag: "🔍", money_with_wings: "💸", no_entry: "⛔", package: "📦",
    paperclip: "📎", pray: "🙏", recycle: "♻️", rotating_light: "🚨", tada: "🎉",
    thumbsup: "👍", warning: "⚠️", wastebasket: "🗑️", wave: "👋", white_check_mark: "✅",
    x: "❌",
  };

  // Commands worth trying, per persona (the composer's "Try" line).
  const SUGGESTIONS = {
    employee: ["/license request intellij", "/license request", "/license mine", "/license catalog",
      "/license help"],
    manager: ["/license mine", "/license request figma", "/license catalog", "/license help"],
    it: ["/license audit intellij", "/license catalog", "/license mine", "/license help"],
    auditor: ["/license audit intellij", "/license audit figma", "/license help"],
  };
  const DEFAULT_SUGGESTIONS = ["/license help", "/license catalog", "/license mine"];

  class DemoError extends Error {}

  // ------------------------------------------------------------------------------------------
  // State

  const app = {
    personas: [],
    botUserId: "",
    persona: null, // the persona object being viewed
    names: new Map(), // user id -> display name, everyone in the workspace (from /personas)
    channels: new Map(Object.entries(SEEDED_CHANNELS)), // channel id -> name
    state: null, // the last /demo/api/state answer for the persona
    renderedVersion: null,
    renderedView: "",
    frameSig: "", // what the pane header and composer were last built from
    conversation: null, // id of the open conversation ("home" for App Home)
    lastConversation: {}, // persona key -> conversation id
    seen: {}, // persona key -> conversation id -> newest ts seen
    messageNodes: new Map(), // key -> {sig, node} for the open conversation
    homeSig: "",
    modalSig: "",
    pollTimer: null,
    polling: false,
    pollAgain: false,
  };

  const $ = (id) => document.getElementById(id);

  // ------------------------------------------------------------------------------------------
  // Talking to the demo server

  async function api(path, body) {
    const init = body === undefined
      ? { headers: { Accept: "application/json" } }
      : {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify(body),
      };
    let response;
    try {
      response = await fetch(API + path, init);
    } catch (err) {
      throw new DemoError("The demo server is not answering. Is `licensebot demo` still running?");
    }
    let data = null;
    try {
      data = await response.json();
    } catch (err) {
      data = null;
    }
    if (!response.ok || !data || data.ok === false) {
      const said = data && typeof data.error === "string" ? data.error : "";
      throw new DemoError(said || `The demo server answered HTTP ${response.status}.`);
    }
    return data;
  }

  function userId() {
    return app.persona ? app.persona.user_id : "";
  }

  // ------------------------------------------------------------------------------------------
  // Text: escaping, emoji, mrkdwn

  const HTML_ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
  const escapeHtml = (text) => String(text).replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]);
  // Slack escapes exactly these three in message text; decode once (so "&amp;lt;" shows "&lt;").
  const SLACK_ENTITIES = { amp: "&", lt: "<", gt: ">" };
  const decodeSlack = (text) => String(text).replace(/&(amp|lt|gt);/g, (m, n) => SLACK_ENTITIES[n]);
  const emojify = (text) => String(text).replace(/:([a-z0-9_+-]+):/g, (m, name) => EMOJI[name] || m);

  function userName(id) {
    if (app.names.has(id)) return app.names.get(id);
    return id;
  }

  function channelName(id) {
    if (app.channels.has(id)) return app.channels.get(id);
    return id;
  }

  function safeUrl(url) {
    // Only web links and the demo's own paths become links; anything else (javascript:, data:)
    // is shown as text.
    return /^(https?:\/\/|mailto:)/i.test(url) || /^\/(?!\/)/.test(url);
  }

  function renderSpecial(inner) {
    const bar = inner.indexOf("|");
    const target = bar >= 0 ? inner.slice(0, bar) : inner;
    const label = bar >= 0 ? inner.slice(bar + 1) : "";
    if (/^@[UWB][A-Z0-9]+$/.test(target)) {
      const id = target.slice(1);
      const name = label ? decodeSlack(label).replace(/^@/, "") : userName(id);
      return `<span class="mk-mention">@${escapeHtml(name)}</span>`;
    }
    if (/^#[CG][A-Z0-9]+$/.test(target)) {
      const name = label ? decodeSlack(label) : channelName(target.slice(1));
      return `<span class="mk-mention">#${escapeHtml(name)}</span>`;
    }
    if (target.startsWith("!")) {
      const command = target.slice(1);
      if (/^(here|channel|everyone)$/.test(command)) {
        return `<span class="mk-mention mk-broadcast">@${command}</span>`;
      }
      if (command.startsWith("subteam^")) {
        const name = label ? decodeSlack(label).replace(/^@/, "") : "group";
        return `<span class="mk-mention">@${escapeHtml(name)}</span>`;
      }
      // <!date^…|fallback> and anything newer: Slack shows the fallback text.
      return escapeHtml(decodeSlack(label || command));
    }
    const url = decodeSlack(target);
    if (safeUrl(url)) {
      const text = label ? decodeSlack(label) : url;
      return `<a class="mk-link" href="${escapeHtml(url)}" target="_blank" rel="noopener noreferrer">${escapeHtml(text)}</a>`;
    }
    return escapeHtml(decodeSlack(`<${inner}>`));
  }

  // Emphasis needs a non-word character (or the edge) outside and non-space inside, like Slack:
  // "snake_case_name" and "2*3*4" stay as typed.
  const EMPHASIS = [
    [/(^|[^\w*])\*(?!\s)([^*\n]*?[^\s*])\*(?!\w)/g, "b"],
    [/(^|[^\w_])_(?!\s)([^_\n]*?[^\s_])_(?!\w)/g, "i"],
    [/(^|[^\w~])~(?!\s)([^~\n]*?[^\s~])~(?!\w)/g, "s"],
  ];

  function renderInline(text) {
    // Code spans and <…> tokens are rendered first and parked behind private-use placeholders,
    // so emphasis can span them but never reach inside them.
    const parked = [];
    const park = (html) => `\uE000${parked.push(html) - 1}\uE001`;
    let source = text.replace(/`([^`\n]+)`/g, (m, code) =>
      park(`<code class="mk-code">${escapeHtml(decodeSlack(code))}</code>`));
    source = source.replace(/<([^<>\n]+)>/g, (m, inner) => park(renderSpecial(inner)));
    let html = escapeHtml(decodeSlack(source));
    for (const [pattern, tag] of EMPHASIS) {
      html = html.replace(pattern, (m, before, body) => `${before}<${tag}>${body}</${tag}>`);
    }
    html = emojify(html);
    return html.replace(/\uE000(\d+)\uE001/g, (m, i) => parked[Number(i)]);
  }

  function renderLines(text) {
    // Lines starting with ">" (or "&gt;", as Slack stores typed text) are quotes.
    const out = [];
    let quote = [];
    let lines = [];
    const flushLines = () => {
      if (lines.length) out.push(lines.map(renderInline).join("<br>"));
      lines = [];
    };
    const flushQuote = () => {
      if (quote.length) {
        out.push(`<blockquote class="mk-quote">${quote.map(renderInline).join("<br>")}</blockquote>`);
      }
      quote = [];
    };
    for (const line of text.split("\n")) {
      const match = /^(?:&gt;|>) ?(.*)$/.exec(line);
      if (match) {
        flushLines();
        quote.push(match[1]);
      } else {
        flushQuote();
        lines.push(line);
      }
    }
    flushLines();
    flushQuote();
    return out.join("");
  }

  function mrkdwn(text) {
    const clean = String(text == null ? "" : text).replace(/[\uE000\uE001]/g, "");
    // Odd parts are ``` code blocks: literal, one newline trimmed at each edge.
    const parts = clean.split(/```([\s\S]*?)```/);
    let html = "";
    parts.forEach((part, i) => {
      if (i % 2 === 1) {
        const code = part.replace(/^\n/, "").replace(/\n$/, "");
        html += `<pre class="mk-pre">${escapeHtml(decodeSlack(code))}</pre>`;
      } else {
        let prose = part;
        if (i > 0) prose = prose.replace(/^\n/, "");
        if (i < parts.length - 1) prose = prose.replace(/\n$/, "");
        if (prose) html += renderLines(prose);
      }
    });
    return html;
  }

  // ------------------------------------------------------------------------------------------
  // DOM helpers

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text != null) node.textContent = text;
    return node;
  }

  function textObject(obj, className) {
    // A Block Kit text object: mrkdwn is rendered, plain_text stays plain (emoji codes allowed).
    const node = el("div", className);
    if (!obj) return node;
    if (obj.type === "mrkdwn") {
      node.classList.add("mk");
      node.innerHTML = mrkdwn(obj.text);
    } else {
      node.textContent = plain(obj);
    }
    return node;
  }

  function plain(obj) {
    if (!obj) return "";
    if (typeof obj === "string") return obj;
    return obj.emoji === false ? String(obj.text || "") : emojify(obj.text || "");
  }

  function initials(name) {
    const words = String(name).trim().split(/\s+/).filter(Boolean);
    if (!words.length) return "?";
    const first = words[0][0] || "";
    const last = words.length > 1 ? words[words.length - 1][0] : "";
    return (first + last).toUpperCase();
  }

  const AVATAR_COLOURS = ["#2b6cb0", "#b83280", "#2f855a", "#c05621", "#6b46c1", "#2c7a7b"];

  function avatar(id, name, size) {
    const node = el("span", `avatar avatar-${size}`);
    node.setAttribute("aria-hidden", "true");
    if (!id || id === "bot") {
      node.classList.add("avatar-bot");
      node.innerHTML = '<svg viewBox="0 0 24 24" width="60%" height="60%"><path fill="currentColor" d="M14.5 3a6.5 6.5 0 0 0-6.2 8.45L3.3 16.46a1 1 0 0 0-.3.7V20a1 1 0 0 0 1 1h2.5a1 1 0 0 0 1-1v-1h1a1 1 0 0 0 1-1v-1h1a1 1 0 0 0 .7-.3l1.34-1.34A6.5 6.5 0 1 0 14.5 3Zm1.5 3.5a1.5 1.5 0 1 1 0 3 1.5 1.5 0 0 1 0-3Z"/></svg>';
      return node;
    }
    let hash = 0;
    for (const ch of id) hash = (hash * 31 + ch.charCodeAt(0)) >>> 0;
    node.style.background = AVATAR_COLOURS[hash % AVATAR_COLOURS.length];
    node.textContent = initials(name);
    return node;
  }

  function domId(...parts) {
    return parts.map((p) => String(p).replace(/[^A-Za-z0-9_-]/g, "_")).join("--");
  }

  const TIME = new Intl.DateTimeFormat("en-US", { hour: "numeric", minute: "2-digit", timeZone: "UTC" });
  const DAY = new Intl.DateTimeFormat("en-US", {
    weekday: "long", month: "long", day: "numeric", year: "numeric", timeZone: "UTC",
  });
  const CLOCK = new Intl.DateTimeFormat("en-GB", {
    weekday: "short", day: "numeric", month: "short", year: "numeric",
    hour: "2-digit", minute: "2-digit", timeZone: "UTC",
  });
  const tsDate = (ts) => new Date(Math.floor(Number(ts) * 1000));
  const dayKey = (ts) => tsDate(ts).toISOString().slice(0, 10);

  // ------------------------------------------------------------------------------------------
  // Feedback: the control result line, the composer error and toasts

  function withCode(node, text) {
    // Server sentences quote commands in backticks; show those as code, the rest as text.
    String(text).split("`").forEach((part, i) => {
      if (!part) return;
      node.append(i % 2 === 1 ? el("code", "mk-code", part) : document.createTextNode(part));
    });
    return node;
  }

  function dismissButton(className, onClick) {
    const node = el("button", className, "Dismiss");
    node.type = "button";
    node.addEventListener("click", onClick);
    return node;
  }

  let resultTimer = null;

  function showControlResult(text, isError) {
    const node = $("control-result");
    node.replaceChildren(withCode(el("span"), text), dismissButton("demo-result-close", () => {
      node.hidden = true;
    }));
    node.classList.toggle("is-error", Boolean(isError));
    node.hidden = false;
    clearTimeout(resultTimer);
    resultTimer = setTimeout(() => {
      node.hidden = true;
    }, 15000);
  }

  function showComposerError(text) {
    const node = $("composer-error");
    node.replaceChildren();
    if (text) withCode(node, text);
    node.hidden = !text;
  }

  function setOffline(offline, message) {
    // Only the change is shown: the error is a live region, so saying it again at every failed
    // poll would make screen readers repeat it.
    if (document.body.classList.contains("is-offline") === offline) return;
    document.body.classList.toggle("is-offline", offline);
    showComposerError(offline ? message : "");
  }

  function toast(text) {
    const box = $("toasts");
    const node = el("div", "toast");
    node.append(withCode(el("span", "toast-text"), text), dismissButton("toast-close", () => node.remove()));
    box.append(node);
    setTimeout(() => node.remove(), 9000);
  }

  // ------------------------------------------------------------------------------------------
  // Interactions: what a Slack client sends when someone clicks or submits

  async function busy(node, work, onError = (err) => toast(err.message)) {
    // `node` is disabled while `work` runs; a re-render may replace it, until then the person
    // can try again. Errors go to `onError` (a toast unless the caller shows them elsewhere).
    node.disabled = true;
    node.classList.add("is-busy");
    try {
      await work();
    } catch (err) {
      onError(err);
    } finally {
      node.disabled = false;
      node.classList.remove("is-busy");
    }
  }

  async function send(path, body) {
    // Tell Slack (the demo server) something, say so if it failed, and look again.
    try {
      await api(path, body);
    } catch (err) {
      toast(err.message);
    }
    pollSoon();
  }

  function sendAction(source, block, element, extra) {
    return send("/action", {
      user: userId(),
      source,
      block_id: block.block_id,
      action_id: element.action_id,
      ...extra,
    });
  }

  function dialogShell({ tag, variant, role, titleId, title }) {
    // The frame of a modal and of a confirm dialog: backdrop, box, head, body, foot.
    const backdrop = el("div", variant ? `modal-backdrop ${variant}-backdrop` : "modal-backdrop");
    const box = el(tag, variant ? `modal ${variant}` : "modal");
    box.setAttribute("role", role);
    box.setAttribute("aria-modal", "true");
    box.setAttribute("aria-labelledby", titleId);
    const head = el("div", "modal-head");
    const heading = el("h2", "modal-title", title);
    heading.id = titleId;
    head.append(heading);
    const body = el("div", "modal-body");
    const foot = el("div", "modal-foot");
    box.append(head, body, foot);
    backdrop.append(box);
    return { backdrop, box, head, body, foot };
  }

  function confirmDialog(confirm) {
    // Slack asks before running a button that carries a "confirm" object.
    return new Promise((resolve) => {
      const { backdrop, body, foot } = dialogShell({
        tag: "div", variant: "confirm", role: "alertdialog", titleId: "confirm-title",
        title: plain(confirm.title) || "Are you sure?",
      });
      body.append(textObject(confirm.text, "confirm-text"));
      const no = el("button", "bk-btn bk-btn-lg", plain(confirm.deny) || "Cancel");
      const yes = el("button", `bk-btn bk-btn-lg ${confirm.style === "danger" ? "bk-danger" : "bk-primary"}`,
        plain(confirm.confirm) || "Yes");
      no.type = "button";
      yes.type = "button";
      const finish = (answer) => {
        backdrop.remove();
        resolve(answer);
      };
      no.addEventListener("click", () => finish(false));
      yes.addEventListener("click", () => finish(true));
      backdrop.addEventListener("keydown", (event) => {
        if (event.key === "Escape") finish(false);
      });
      foot.append(no, yes);
      document.body.append(backdrop);
      yes.focus();
    });
  }

  function button(element, block, ctx) {
    const styles = { primary: "bk-primary", danger: "bk-danger" };
    const node = el("button", `bk-btn ${styles[element.style] || ""}`.trim(), plain(element.text));
    node.type = "button";
    node.dataset.actionId = element.action_id || "";
    if (element.url) {
      // A link button opens its page; the demo does not report the click to the bot.
      node.addEventListener("click", () => {
        if (safeUrl(element.url)) window.open(element.url, "_blank", "noopener,noreferrer");
      });
      return node;
    }
    node.addEventListener("click", async () => {
      if (element.confirm && !(await confirmDialog(element.confirm))) return;
      const extra = element.value !== undefined ? { value: element.value } : {};
      await busy(node, () => sendAction(ctx.source, block, element, extra));
    });
    return node;
  }

  function optionList(element) {
    // [{label, options:[{text, value}]}] with label null for ungrouped options.
    const options = (list) => (list || []).map((o) => ({ text: plain(o.text), value: o.value }));
    if (Array.isArray(element.option_groups)) {
      return element.option_groups.map((group) => ({
        label: plain(group.label), options: options(group.options),
      }));
    }
    return [{ label: null, options: options(element.options) }];
  }

  function appendOptions(node, groups) {
    for (const group of groups) {
      const parent = group.label ? el("optgroup") : node;
      if (group.label) {
        parent.label = group.label;
        node.append(parent);
      }
      for (const option of group.options) {
        const item = el("option", null, option.text);
        item.value = option.value;
        parent.append(item);
      }
    }
  }

  function userOptions() {
    const people = [...app.names.entries()]
      .filter(([id]) => id !== app.botUserId && !id.startsWith("B"))
      .sort((a, b) => a[1].localeCompare(b[1]));
    return [{ label: null, options: people.map(([id, name]) => ({ text: name, value: id })) }];
  }

  function select(element, block, ctx, interactive) {
    const node = el("select", "bk-select");
    node.dataset.actionId = element.action_id || "";
    const users = element.type === "users_select";
    const placeholder = el("option", null,
      plain(element.placeholder) || (users ? "Select a person" : "Select an item"));
    placeholder.value = "";
    placeholder.disabled = true;
    node.append(placeholder);
    appendOptions(node, users ? userOptions() : optionList(element));
    const initial = users
      ? element.initial_user
      : element.initial_option && element.initial_option.value;
    node.value = initial != null ? initial : "";
    if (node.value === "" || node.selectedIndex < 0) node.value = "";
    if (interactive) {
      node.addEventListener("change", () => busy(node,
        () => sendAction(ctx.source, block, element, { selected_option_value: node.value })));
    }
    return node;
  }

  function overflow(element, block, ctx) {
    const node = el("select", "bk-select bk-overflow");
    node.setAttribute("aria-label", "More actions");
    const head = el("option", null, "⋯");
    head.value = "";
    head.disabled = true;
    node.append(head);
    appendOptions(node, optionList(element));
    node.value = "";
    node.addEventListener("change", () => {
      const value = node.value;
      node.value = "";
      sendAction(ctx.source, block, element, { selected_option_value: value });
    });
    return node;
  }

  function textInput(element) {
    const multiline = Boolean(element.multiline);
    const node = el(multiline ? "textarea" : "input", "bk-text");
    if (!multiline) node.type = "text";
    if (multiline) node.rows = 4;
    node.dataset.actionId = element.action_id || "";
    if (element.placeholder) node.placeholder = plain(element.placeholder);
    if (element.max_length) node.maxLength = element.max_length;
    if (element.initial_value) node.value = element.initial_value;
    return node;
  }

  function image(obj, className) {
    const node = el("img", className);
    node.alt = obj.alt_text || "";
    node.loading = "lazy";
    const url = obj.image_url || (obj.slack_file && obj.slack_file.url) || "";
    if (safeUrl(url)) node.src = url;
    return node;
  }

  function unsupported(kind) {
    return el("span", "bk-unsupported", `[${kind} is not shown in the demo]`);
  }

  function element(element, block, ctx, options) {
    const inInput = Boolean(options && options.inInput);
    switch (element.type) {
      case "button":
        return button(element, block, ctx);
      case "static_select":
      case "users_select":
        return select(element, block, ctx, !inInput || Boolean(block.dispatch_action));
      case "overflow":
        return overflow(element, block, ctx);
      case "image":
        return image(element, "bk-acc-img");
      case "plain_text_input":
        return textInput(element);
      default:
        return unsupported(element.type || "element");
    }
  }

  // ------------------------------------------------------------------------------------------
  // Block Kit

  function renderBlock(block, ctx) {
    const node = el("div", `bk bk-${block.type}`);
    if (block.block_id) node.dataset.blockId = block.block_id;
    switch (block.type) {
      case "header": {
        const h = el("h3", "bk-header-text", plain(block.text));
        node.append(h);
        break;
      }
      case "section": {
        const main = el("div", "bk-section-main");
        if (block.text) main.append(textObject(block.text, "bk-section-text"));
        if (Array.isArray(block.fields) && block.fields.length) {
          const grid = el("div", "bk-fields");
          for (const field of block.fields) grid.append(textObject(field, "bk-field"));
          main.append(grid);
        }
        node.append(main);
        if (block.accessory) {
          const acc = el("div", "bk-accessory");
          acc.append(element(block.accessory, block, ctx));
          node.append(acc);
        }
        break;
      }
      case "divider":
        node.append(el("hr", "bk-divider-line"));
        break;
      case "context":
        for (const item of block.elements || []) {
          if (item.type === "image") node.append(image(item, "bk-context-img"));
          else node.append(textObject(item, "bk-context-text"));
        }
        break;
      case "image": {
        if (block.title) node.append(el("div", "bk-image-title", plain(block.title)));
        node.append(image(block, "bk-image-img"));
        break;
      }
      case "actions": {
        for (const item of block.elements || []) node.append(element(item, block, ctx));
        break;
      }
      case "input":
        renderInput(node, block, ctx);
        break;
      default:
        node.append(unsupported(`A ${block.type || "block"} block`));
    }
    return node;
  }

  function stateValue(state, blockId, actionId) {
    // What Slack kept in view.state for this element (e.g. after a submission with errors).
    const entry = state && state[blockId] && state[blockId][actionId];
    if (!entry || typeof entry !== "object") return null;
    if (typeof entry.value === "string") return entry.value;
    if (entry.selected_option && typeof entry.selected_option.value === "string") {
      return entry.selected_option.value;
    }
    if (typeof entry.selected_user === "string") return entry.selected_user;
    return null;
  }

  function renderInput(node, block, ctx) {
    const id = domId("in", ctx.viewId || "msg", block.block_id, block.element && block.element.action_id);
    const label = el("label", "bk-label");
    label.htmlFor = id;
    label.append(plain(block.label));
    if (block.optional) label.append(el("span", "bk-optional", " (optional)"));
    node.append(label);
    const field = block.element ? element(block.element, block, ctx, { inInput: true }) : null;
    if (field) {
      field.id = id;
      const typed = stateValue(ctx.state, block.block_id, block.element.action_id);
      if (typed != null && "value" in field) field.value = typed;
      node.append(field);
    }
    if (block.hint) node.append(el("div", "bk-hint", plain(block.hint)));
    const error = ctx.errors && block.block_id ? ctx.errors[block.block_id] : "";
    if (error) markFieldError(node, field, error);
  }

  function markFieldError(node, field, message) {
    // The error goes last in its input block (after the hint), and the field points at it.
    const error = el("div", "bk-error", message);
    error.id = `${field ? field.id : domId("in", node.dataset.blockId || "")}--error`;
    error.setAttribute("role", "alert");
    if (field) {
      field.setAttribute("aria-invalid", "true");
      field.setAttribute("aria-describedby", error.id);
    }
    node.classList.add("has-error");
    node.append(error);
  }

  function renderBlocks(blocks, ctx) {
    const box = el("div", "blocks");
    for (const block of blocks || []) {
      if (block && typeof block === "object") box.append(renderBlock(block, ctx));
    }
    return box;
  }

  // ------------------------------------------------------------------------------------------
  // Messages

  const fromBot = (message) => Boolean(message.bot || !message.user);

  function senderName(message) {
    return fromBot(message) ? BOT_NAME : userName(message.user);
  }

  function senderKey(message) {
    return fromBot(message) ? "bot" : message.user;
  }

  function isCompact(prev, message) {
    // Slack folds a run of messages from one sender within a few minutes under one name.
    if (!prev || message.ephemeral || prev.ephemeral) return false;
    if (senderKey(prev) !== senderKey(message)) return false;
    if (dayKey(prev.ts) !== dayKey(message.ts)) return false;
    return Number(message.ts) - Number(prev.ts) < 300;
  }

  function renderFiles(files) {
    const box = el("div", "msg-files");
    for (const file of files) {
      const url = safeUrl(file.url || "") ? file.url : "";
      const isImage = String(file.mimetype || "").startsWith("image/");
      if (isImage && url) {
        const figure = el("figure", "msg-file-image");
        const link = el("a");
        link.href = url;
        link.target = "_blank";
        link.rel = "noopener";
        const img = el("img");
        img.src = url;
        img.alt = file.title || file.name || "Attached image";
        link.append(img);
        figure.append(el("figcaption", null, file.title || file.name || ""), link);
        box.append(figure);
      } else {
        const card = el(url ? "a" : "div", "msg-file-card");
        if (url) {
          card.href = url;
          card.setAttribute("download", file.name || "");
        }
        const ext = String(file.name || "").split(".").pop() || "file";
        card.append(el("span", "msg-file-icon", ext.slice(0, 4).toUpperCase()));
        const meta = el("span", "msg-file-meta");
        meta.append(el("span", "msg-file-name", file.title || file.name || "File"));
        meta.append(el("span", "msg-file-type", file.name || file.mimetype || ""));
        card.append(meta);
        box.append(card);
      }
    }
    return box;
  }

  function eyeIcon() {
    const span = el("span", "eye");
    span.setAttribute("aria-hidden", "true");
    span.innerHTML = '<svg viewBox="0 0 20 20" width="14" height="14"><path fill="currentColor" d="M10 4c4.2 0 7.3 3.3 8.3 5.6a1 1 0 0 1 0 .8C17.3 12.7 14.2 16 10 16s-7.3-3.3-8.3-5.6a1 1 0 0 1 0-.8C2.7 7.3 5.8 4 10 4Zm0 1.5c-3.3 0-6 2.6-6.8 4.5.8 1.9 3.5 4.5 6.8 4.5s6-2.6 6.8-4.5C16 8.1 13.3 5.5 10 5.5ZM10 7a3 3 0 1 1 0 6 3 3 0 0 1 0-6Z"/></svg>';
    return span;
  }

  function renderMessage(message, compact) {
    const node = el("div", "msg");
    node.dataset.ts = message.ts;
    node.setAttribute("role", "article");
    if (message.ephemeral) node.dataset.ephemeral = "true";
    if (compact) node.classList.add("msg-compact");
    const time = TIME.format(tsDate(message.ts));
    const gutter = el("div", "msg-gutter");
    if (compact) {
      gutter.append(el("span", "msg-hover-time", time.replace(/\s?[AP]M$/, "")));
    } else {
      gutter.append(avatar(senderKey(message), senderName(message), "36"));
    }
    const content = el("div", "msg-content");
    if (message.ephemeral) {
      const label = el("div", "msg-ephemeral-label");
      label.append(eyeIcon(), el("span", null, "Only visible to you"));
      content.append(label);
    }
    if (!compact) {
      const head = el("div", "msg-head");
      head.append(el("span", "msg-author", senderName(message)));
      if (fromBot(message)) head.append(el("span", "app-badge", "APP"));
      const stamp = el("time", "msg-time", time);
      stamp.dateTime = tsDate(message.ts).toISOString();
      head.append(stamp);
      content.append(head);
    }
    const ctx = {
      source: { type: "message", channel: message.channel, ts: message.ts },
      viewId: null,
      errors: null,
    };
    if (Array.isArray(message.blocks) && message.blocks.length) {
      content.append(renderBlocks(message.blocks, ctx));
    } else {
      content.append(textObject({ type: "mrkdwn", text: message.text || "" }, "msg-text"));
    }
    if (message.edited) content.append(el("span", "msg-edited", "(edited)"));
    if (Array.isArray(message.files) && message.files.length) content.append(renderFiles(message.files));
    node.append(gutter, content);
    return node;
  }

  function conversationIntro(conv) {
    const box = el("div", "intro");
    if (conv.kind === "channel") {
      box.append(el("h2", "intro-title", `#${conv.name}`));
      box.append(el("p", "intro-text",
        `This is the very beginning of the #${conv.name} channel. licensebot posts approvals ` +
        "for IT, out-of-stock alerts and the weekly digest here."));
    } else {
      const row = el("div", "intro-row");
      row.append(avatar("bot", BOT_NAME, "72"));
      const who = el("div");
      who.append(el("h2", "intro-title", BOT_NAME), el("span", "app-badge", "APP"));
      row.append(who);
      box.append(row);
      box.append(withCode(el("p", "intro-text"),
        "This conversation is just between you and licensebot. Type `/license help` below " +
        "to see what it can do."));
    }
    return box;
  }

  function reconcile(parent, nodes) {
    nodes.forEach((node, i) => {
      if (parent.children[i] !== node) parent.insertBefore(node, parent.children[i] || null);
    });
    while (parent.children.length > nodes.length) parent.lastElementChild.remove();
  }

  function renderConversation(conv, messages, switched) {
    const body = $("pane-body");
    let list = body.querySelector(".messages");
    if (switched || !list || list.dataset.conversation !== conv.id) {
      body.replaceChildren();
      list = el("div", "messages");
      list.dataset.conversation = conv.id;
      list.setAttribute("role", "log");
      list.setAttribute("aria-label", `Messages in ${conv.kind === "channel" ? "#" : ""}${conv.name}`);
      body.append(list);
      app.messageNodes = new Map();
    }
    const nearBottom = body.scrollHeight - body.scrollTop - body.clientHeight < 80;
    const keepTop = body.scrollTop;
    const cache = new Map();
    const take = (key, sig, build) => {
      const old = app.messageNodes.get(key);
      const node = old && old.sig === sig ? old.node : build();
      cache.set(key, { sig, node });
      return node;
    };
    const nodes = [take("intro", conv.name, () => conversationIntro(conv))];
    let prev = null;
    for (const message of messages) {
      if (!prev || dayKey(prev.ts) !== dayKey(message.ts)) {
        const day = dayKey(message.ts);
        nodes.push(take(`day:${day}`, day, () => {
          const divider = el("div", "day-divider");
          divider.append(el("span", "day-pill", DAY.format(tsDate(message.ts))));
          return divider;
        }));
      }
      const compact = isCompact(prev, message);
      const sig = `${compact}|${JSON.stringify(message)}`;
      nodes.push(take(`msg:${message.ts}`, sig, () => renderMessage(message, compact)));
      prev = message;
    }
    app.messageNodes = cache;
    reconcile(list, nodes);
    // Stay at the newest message when the reader was there; otherwise keep their place.
    if (switched || nearBottom) body.scrollTop = body.scrollHeight;
    else body.scrollTop = keepTop;
  }

  function openedHome() {
    // Slack tells the app each time someone opens its Home tab; the bot publishes the view then.
    send("/home", { user: userId() });
  }

  function renderHome(view, switched) {
    const body = $("pane-body");
    const sig = JSON.stringify(view);
    let box = body.querySelector(".home");
    if (!switched && box && sig === app.homeSig) return;
    const keepTop = switched ? 0 : body.scrollTop;
    app.homeSig = sig;
    box = el("div", "home");
    if (!view) {
      box.append(el("p", "home-empty", "licensebot has not published a Home tab for you yet."));
    } else {
      const ctx = { source: { type: "view", view_id: view.id }, viewId: view.id, errors: view.errors || {} };
      box.append(renderBlocks(view.blocks, ctx));
    }
    body.replaceChildren(box);
    body.scrollTop = keepTop;
  }

  // ------------------------------------------------------------------------------------------
  // Modals

  function readModalValues(root) {
    const values = {};
    for (const field of root.querySelectorAll("[data-action-id]")) {
      if (field.tagName === "BUTTON" || !field.id) continue;
      values[field.id] = field.value;
    }
    return values;
  }

  function renderModal(view) {
    const root = $("modal-root");
    const sig = JSON.stringify(view);
    if (sig === app.modalSig) return;
    app.modalSig = sig;
    const previous = root.querySelector(".modal");
    const sameView = Boolean(view && previous && previous.dataset.viewId === view.id);
    // Slack keeps what the person typed when the app updates the open view.
    const kept = sameView ? readModalValues(previous) : {};
    const focused = sameView && document.activeElement ? document.activeElement.id : "";
    const keptScroll = sameView ? previous.querySelector(".modal-body").scrollTop : 0;
    root.replaceChildren();
    // While a modal is open the client behind it is out of reach, for keyboards and screen
    // readers too, as in Slack. The demo bar is not part of Slack and stays usable.
    for (const behind of document.querySelectorAll(".topbar, .workspace")) behind.inert = Boolean(view);
    if (!view) return;

    const { backdrop, box: form, head, body, foot } = dialogShell({
      tag: "form", role: "dialog", titleId: "modal-title", title: plain(view.title),
    });
    form.noValidate = true;
    form.dataset.viewId = view.id;

    const x = el("button", "modal-x");
    x.type = "button";
    x.setAttribute("aria-label", "Close");
    x.innerHTML = '<svg viewBox="0 0 20 20" width="18" height="18" aria-hidden="true"><path fill="currentColor" d="M4.3 4.3a1 1 0 0 1 1.4 0L10 8.6l4.3-4.3a1 1 0 1 1 1.4 1.4L11.4 10l4.3 4.3a1 1 0 0 1-1.4 1.4L10 11.4l-4.3 4.3a1 1 0 0 1-1.4-1.4L8.6 10 4.3 5.7a1 1 0 0 1 0-1.4Z"/></svg>';
    head.prepend(avatar("bot", BOT_NAME, "24"));
    head.append(x);

    const errors = { ...(view.errors || {}) };
    const ctx = {
      source: { type: "view", view_id: view.id }, viewId: view.id, errors, state: view.state || {},
    };
    body.append(renderBlocks(view.blocks, ctx));

    const problem = el("p", "modal-problem");
    problem.setAttribute("role", "alert");
    problem.hidden = true;
    const close = el("button", "bk-btn bk-btn-lg", plain(view.close) || "Cancel");
    close.type = "button";
    foot.append(problem, close);
    let submit = null;
    if (view.submit) {
      submit = el("button", "bk-btn bk-btn-lg bk-primary", plain(view.submit));
      submit.type = "submit";
      foot.append(submit);
    }
    root.append(backdrop);

    for (const [id, value] of Object.entries(kept)) {
      const field = form.querySelector(`#${CSS.escape(id)}`);
      if (field) field.value = value;
    }
    body.scrollTop = keptScroll;

    const closeModal = () => send("/close", { user: userId(), view_id: view.id });
    x.addEventListener("click", closeModal);
    close.addEventListener("click", closeModal);
    form.addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        event.preventDefault();
        closeModal();
      }
    });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (!submit) return;
      const collected = collectValues(view, form);
      if (Object.keys(collected.errors).length) {
        showFieldErrors(form, collected.errors);
        return;
      }
      problem.hidden = true;
      await busy(submit, async () => {
        const answer = await api("/submit", { user: userId(), view_id: view.id, values: collected.values });
        if (answer.errors && Object.keys(answer.errors).length) showFieldErrors(form, answer.errors);
      }, (err) => {
        problem.replaceChildren();
        withCode(problem, err.message);
        problem.hidden = false;
      });
      pollSoon();
    });

    const again = focused ? form.querySelector(`#${CSS.escape(focused)}`) : null;
    const first = form.querySelector(".bk-text, .bk-select");
    (again || first || close).focus();
  }

  function inputValue(field) {
    if (!field) return null;
    // Like Slack's view.state: an empty field or an unpicked select is null.
    return field.value === "" ? null : field.value;
  }

  function collectValues(view, form) {
    // {block_id: {action_id: value}} for every input block, as Slack's view.state.values.
    const values = {};
    const errors = {};
    for (const block of view.blocks || []) {
      if (block.type !== "input" || !block.element) continue;
      const element = block.element;
      const node = form.querySelector(`[data-block-id="${CSS.escape(block.block_id)}"]`);
      const field = node ? node.querySelector("[data-action-id]") : null;
      const value = inputValue(field);
      const empty = value == null || (typeof value === "string" && value.trim() === "");
      // Slack's own client refuses an empty required field before anything is sent.
      if (empty && !block.optional) errors[block.block_id] = REQUIRED_MESSAGE;
      else if (!empty && element.min_length && value.length < element.min_length) {
        errors[block.block_id] = `Please enter at least ${element.min_length} characters.`;
      }
      values[block.block_id] = { [element.action_id]: value };
    }
    return { values, errors };
  }

  function showFieldErrors(form, errors) {
    for (const old of form.querySelectorAll(".bk-error")) old.remove();
    for (const node of form.querySelectorAll(".has-error")) node.classList.remove("has-error");
    let first = null;
    for (const [blockId, message] of Object.entries(errors)) {
      const node = form.querySelector(`[data-block-id="${CSS.escape(blockId)}"]`);
      if (!node) continue;
      const field = node.querySelector("[data-action-id]");
      markFieldError(node, field, message);
      first = first || field;
    }
    if (first) first.focus();
  }

  // ------------------------------------------------------------------------------------------
  // Frame: personas, sidebar, header, composer

  function renderPersonas() {
    const box = $("personas");
    box.replaceChildren();
    for (const persona of app.personas) {
      const b = el("button", "persona");
      b.type = "button";
      b.dataset.persona = persona.key;
      b.setAttribute("aria-pressed", String(app.persona && app.persona.key === persona.key));
      b.append(avatar(persona.user_id, persona.name, "20"));
      const words = el("span", "persona-words");
      words.append(el("span", "persona-name", persona.name), el("span", "persona-title", persona.title || ""));
      b.append(words);
      b.addEventListener("click", () => switchPersona(persona.key));
      box.append(b);
    }
    const me = $("me");
    me.replaceChildren();
    if (app.persona) {
      me.append(el("span", null, app.persona.name));
      const pic = avatar(app.persona.user_id, app.persona.name, "26");
      pic.append(el("span", "presence"));
      me.append(pic);
    }
  }

  function unreadCount(conv, messages) {
    if (conv.kind === "home" || conv.id === app.conversation) return 0;
    const seen = ((app.seen[app.persona.key] || {})[conv.id]) || 0;
    return (messages || []).filter((m) => Number(m.ts) > seen).length;
  }

  function markSeen(convId, messages) {
    const mine = app.seen[app.persona.key] || (app.seen[app.persona.key] = {});
    const newest = (messages || []).reduce((top, m) => Math.max(top, Number(m.ts)), 0);
    mine[convId] = Math.max(mine[convId] || 0, newest);
  }

  const ICONS = {
    channel: '<svg viewBox="0 0 20 20" width="15" height="15"><path fill="currentColor" d="M8.2 2.6a.75.75 0 0 1 .6.87L8.3 6.5h4.5l.55-3.13a.75.75 0 1 1 1.48.26L14.34 6.5H17a.75.75 0 0 1 0 1.5h-2.92l-.8 4.5H16a.75.75 0 0 1 0 1.5h-2.98l-.55 3.13a.75.75 0 1 1-1.48-.26l.51-2.87H7.02l-.55 3.13a.75.75 0 1 1-1.48-.26L5.5 14H3a.75.75 0 0 1 0-1.5h2.76l.8-4.5H4a.75.75 0 0 1 0-1.5h2.82l.5-3.13a.75.75 0 0 1 .88-.6ZM8.04 8l-.8 4.5h4.5l.8-4.5h-4.5Z"/></svg>',
    home: '<svg viewBox="0 0 20 20" width="15" height="15"><path fill="currentColor" d="M9.5 2.2a.75.75 0 0 1 1 0l7 6.25a.75.75 0 0 1-1 1.1L16 9.12V16a2 2 0 0 1-2 2h-2.25a.75.75 0 0 1-.75-.75V13h-2v4.25a.75.75 0 0 1-.75.75H6a2 2 0 0 1-2-2V9.12l-.5.45a.75.75 0 1 1-1-1.12l7-6.25ZM5.5 7.78V16c0 .28.22.5.5.5h1.5v-4.25c0-.41.34-.75.75-.75h3.5c.41 0 .75.34.75.75v4.25H14a.5.5 0 0 0 .5-.5V7.78L10 3.76 5.5 7.78Z"/></svg>',
  };

  function renderSuggestions() {
    const box = $("chips");
    box.replaceChildren();
    const list = SUGGESTIONS[app.persona ? app.persona.key : ""] || DEFAULT_SUGGESTIONS;
    for (const command of list) {
      const chip = el("button", "chip", command);
      chip.type = "button";
      chip.addEventListener("click", () => {
        const input = $("composer-input");
        input.value = command;
        autosize();
        input.focus();
      });
      box.append(chip);
    }
  }

  function renderSidebar() {
    const nav = $("conversations");
    const conversations = app.state.conversations || [];
    const sections = [
      ["Channels", conversations.filter((c) => c.kind === "channel")],
      ["Apps", conversations.filter((c) => c.kind !== "channel")],
    ];
    nav.replaceChildren();
    for (const [title, items] of sections) {
      if (!items.length) continue;
      const section = el("div", "side-section");
      section.append(el("div", "side-title", title));
      for (const conv of items) {
        const b = el("button", "side-item");
        b.type = "button";
        b.dataset.conversation = conv.id;
        b.dataset.kind = conv.kind;
        if (conv.id === app.conversation) {
          b.classList.add("is-active");
          b.setAttribute("aria-current", "page");
        }
        const icon = el("span", "side-icon");
        icon.setAttribute("aria-hidden", "true");
        if (conv.kind === "dm") icon.append(avatar("bot", BOT_NAME, "18"));
        else icon.innerHTML = ICONS[conv.kind === "channel" ? "channel" : "home"];
        const label = conv.kind === "home" ? `${BOT_NAME} · ${conv.name}` : conv.name;
        b.append(icon, el("span", "side-label", label));
        const unread = unreadCount(conv, (app.state.messages || {})[conv.id]);
        if (unread) {
          b.classList.add("is-unread");
          const badge = el("span", "side-badge", String(unread));
          badge.setAttribute("aria-label", `${unread} new`);
          b.append(badge);
        }
        b.addEventListener("click", () => switchConversation(conv.id));
        section.append(b);
      }
      nav.append(section);
    }
  }

  function appTabs() {
    // Like Slack's app view: Home and Messages tabs switch between App Home and the DM.
    const conversations = app.state.conversations || [];
    return [["Home", conversations.find((c) => c.kind === "home")],
      ["Messages", conversations.find((c) => c.kind === "dm")]].filter(([, target]) => target);
  }

  function renderHeader(conv, tabList) {
    const header = $("pane-header");
    header.replaceChildren();
    const title = el("div", "pane-title");
    if (conv.kind === "channel") {
      const icon = el("span", "pane-title-icon");
      icon.innerHTML = ICONS.channel;
      title.append(icon, el("h1", null, conv.name));
      header.append(title);
      header.append(el("span", "pane-topic", "Approvals for IT, stock alerts and the weekly digest"));
      return;
    }
    title.append(avatar("bot", BOT_NAME, "24"), el("h1", null, BOT_NAME), el("span", "app-badge", "APP"));
    header.append(title);
    const tabs = el("div", "tabs");
    tabs.setAttribute("role", "tablist");
    for (const [label, target] of tabList) {
      const tab = el("button", "tab", label);
      tab.type = "button";
      tab.setAttribute("role", "tab");
      tab.setAttribute("aria-selected", String(target.id === conv.id));
      tab.addEventListener("click", () => switchConversation(target.id));
      tabs.append(tab);
    }
    header.append(tabs);
  }

  function renderComposer(conv) {
    const form = $("composer");
    form.hidden = conv.kind === "home";
    const input = $("composer-input");
    input.placeholder = conv.kind === "channel" ? `Message #${conv.name}` : `Message ${BOT_NAME}`;
  }

  function showClock(now) {
    // The demo clock is real time plus the advanced days, so it moves even when nothing else does.
    const clock = $("clock");
    clock.dateTime = now || "";
    const text = now ? `${CLOCK.format(new Date(now))} UTC` : "";
    // The clock is a live region: only a new minute is news.
    if (clock.textContent !== text) clock.textContent = text;
  }

  function renderFrame(conv) {
    // The pane header and the composer show only the open conversation; rebuilding them at
    // every poll would drop the keyboard focus on the tabs.
    const tabList = conv.kind === "channel" ? [] : appTabs();
    const sig = JSON.stringify([app.persona.key, conv.id, conv.kind, conv.name,
      tabList.map(([, target]) => target.id)]);
    if (sig === app.frameSig) return;
    app.frameSig = sig;
    renderHeader(conv, tabList);
    renderComposer(conv);
  }

  function currentConversation() {
    const conversations = app.state.conversations || [];
    let conv = conversations.find((c) => c.id === app.conversation);
    if (!conv) {
      conv = conversations.find((c) => c.kind === "dm") || conversations[0];
      app.conversation = conv ? conv.id : null;
    }
    return conv;
  }

  function render(force) {
    const s = app.state;
    if (!s || !app.persona) return;
    $("loading") && $("loading").remove();
    const conv = currentConversation();
    const viewKey = `${app.persona.key}|${app.conversation}`;
    const switched = viewKey !== app.renderedView;
    showClock(s.now);
    if (!force && !switched && s.version === app.renderedVersion) return;

    for (const c of s.conversations || []) {
      if (c.kind === "channel") app.channels.set(c.id, c.name);
    }
    if (conv) {
      const messages = conv.kind === "home" ? [] : ((s.messages || {})[conv.id] || []);
      renderFrame(conv);
      if (conv.kind === "home") {
        if (switched) openedHome();
        renderHome(s.home, switched);
      }
      else {
        renderConversation(conv, messages, switched);
        markSeen(conv.id, messages);
      }
    }
    renderSidebar();
    renderModal(s.modal || null);
    app.renderedVersion = s.version;
    app.renderedView = viewKey;
  }

  // ------------------------------------------------------------------------------------------
  // Polling

  async function poll() {
    if (!app.persona) return;
    if (app.polling) {
      app.pollAgain = true;
      return;
    }
    app.polling = true;
    const asked = userId();
    try {
      const s = await api(`/state?user=${encodeURIComponent(asked)}`);
      // A persona switch while this was in flight makes the answer stale.
      if (asked === userId()) {
        app.state = s;
        render(false);
        setOffline(false);
      }
    } catch (err) {
      setOffline(true, err.message);
    } finally {
      app.polling = false;
    }
    if (app.pollAgain) {
      app.pollAgain = false;
      poll();
    }
  }

  function schedulePoll() {
    clearTimeout(app.pollTimer);
    app.pollTimer = setTimeout(async () => {
      await poll();
      schedulePoll();
    }, POLL_MS);
  }

  function pollSoon() {
    poll();
    schedulePoll();
  }

  // ------------------------------------------------------------------------------------------
  // Navigation and controls

  function remember() {
    try {
      sessionStorage.setItem("licensebot-demo", JSON.stringify({
        persona: app.persona && app.persona.key, last: app.lastConversation,
      }));
    } catch (err) {
      // Private windows may refuse storage; the demo works without it.
    }
  }

  function switchPersona(key) {
    const persona = app.personas.find((p) => p.key === key);
    if (!persona || (app.persona && app.persona.key === key)) return;
    app.persona = persona;
    app.state = null;
    app.renderedVersion = null;
    app.modalSig = "";
    app.homeSig = "";
    app.conversation = app.lastConversation[key] || null;
    $("pane-body").replaceChildren(el("div", "loading", `Opening Slack as ${persona.name}…`));
    renderModal(null);
    showComposerError("");
    renderPersonas();
    renderSuggestions();
    remember();
    pollSoon();
  }

  function switchConversation(id) {
    if (id === app.conversation) return;
    app.conversation = id;
    app.lastConversation[app.persona.key] = id;
    showComposerError("");
    remember();
    render(true);
    if (id !== "home") $("composer-input").focus();
  }

  async function sendCommand() {
    const input = $("composer-input");
    const text = input.value.trim();
    if (!text || !app.persona || !app.conversation) return;
    showComposerError("");
    await busy($("composer-send"), async () => {
      await api("/command", { user: userId(), channel: app.conversation, text });
      input.value = "";
      autosize();
    }, (err) => showComposerError(err.message));
    input.focus();
    pollSoon();
  }

  function autosize() {
    const input = $("composer-input");
    input.style.height = "auto";
    input.style.height = `${Math.min(input.scrollHeight, 160)}px`;
  }

  async function control(body, button) {
    await busy(button, async () => {
      const answer = await api("/control", body);
      showControlResult(answer.message || "Done.", false);
    }, (err) => showControlResult(err.message, true));
    pollSoon();
  }

  function wireControls() {
    $("run-reclaim").addEventListener("click", (e) => control({ action: "reclaim" }, e.currentTarget));
    $("run-digest").addEventListener("click", (e) => control({ action: "digest" }, e.currentTarget));
    $("advance").addEventListener("click", (e) => {
      const days = Number($("advance-days").value);
      control({ action: "advance", days }, e.currentTarget);
    });
    $("composer").addEventListener("submit", (event) => {
      event.preventDefault();
      sendCommand();
    });
    const input = $("composer-input");
    input.addEventListener("keydown", (event) => {
      // Enter sends, Shift+Enter adds a line, as in Slack.
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        sendCommand();
      }
    });
    input.addEventListener("input", () => {
      autosize();
      if (!$("composer-error").hidden) showComposerError("");
    });
  }

  async function start() {
    wireControls();
    let answer;
    try {
      answer = await api("/personas");
    } catch (err) {
      $("pane-body").replaceChildren(el("div", "loading is-error", err.message));
      return;
    }
    app.personas = answer.personas || [];
    const users = answer.users && typeof answer.users === "object" ? answer.users : {};
    app.names = new Map(Object.entries(users).filter(([, name]) => typeof name === "string"));
    app.botUserId = typeof answer.bot_user_id === "string" ? answer.bot_user_id : "";
    if (answer.notice) $("notice-text").textContent = answer.notice;
    let saved = {};
    try {
      saved = JSON.parse(sessionStorage.getItem("licensebot-demo") || "{}") || {};
    } catch (err) {
      saved = {};
    }
    app.lastConversation = saved.last || {};
    const first = app.personas.find((p) => p.key === saved.persona) || app.personas[0];
    if (first) switchPersona(first.key);
  }

  document.addEventListener("DOMContentLoaded", start);
})();
