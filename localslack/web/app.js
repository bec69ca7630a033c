// localslack web client: renders the workspace from /ui/state, refreshes on
// Server-Sent Events, and sends commands and clicks as the chosen user.
"use strict";
// Browser tests read uncaught errors from here.
window.localslackErrors = [];
window.addEventListener("error", (ev) => window.localslackErrors.push(String(ev.message)));
window.addEventListener("unhandledrejection", (ev) => window.localslackErrors.push(String(ev.reason)));
(function () {
  const $ = (id) => document.getElementById(id);
  const state = {
    data: null,
    acting: localStorage.getItem("localslack.acting") || "",
    channel: "",
    view: "channel", // or "home"
    thread: "",
    inflight: null,
  };

  // ---------- utilities ----------
  function esc(s) {
    return String(s == null ? "" : s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  }
  function el(tag, attrs, html) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") e.className = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? "" : v);
    }
    if (html !== undefined) e.innerHTML = html;
    return e;
  }
  function tsDate(ts) { return new Date(parseFloat(ts) * 1000); }
  function hhmm(d) { return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }); }
  function user(id) { return (state.data.users || []).find((u) => u.id === id); }
  function userName(id) { const u = user(id); return u ? u.name : id; }
  function displayName(id) {
    if (id === "USLACKBOT") return "Slackbot";
    const u = user(id); return u ? (u.real_name || u.name) : id;
  }
  function avatar(id) {
    if (id === "USLACKBOT") return "data:image/svg+xml," + encodeURIComponent('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 36 36"><rect width="36" height="36" rx="6" fill="#2eb67d"/><text x="18" y="24" font-size="16" text-anchor="middle" fill="#fff" font-family="sans-serif" font-weight="700">S</text></svg>');
    return "/avatar/" + encodeURIComponent(id) + ".svg";
  }
  function toast(msg, isErr) {
    const t = el("div", { class: "toast" + (isErr ? " err" : ""), "data-testid": "toast" });
    t.textContent = msg;
    $("toasts").appendChild(t);
    setTimeout(() => t.remove(), isErr ? 7000 : 3500);
  }
  async function post(path, body) {
    const r = await fetch(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    return r.json();
  }

  // ---------- mrkdwn ----------
  const EMOJI = {
    white_check_mark: "✅", heavy_check_mark: "✔️", x: "❌", warning: "⚠️", hourglass: "⌛", hourglass_flowing_sand: "⏳",
    rocket: "🚀", lock: "🔒", unlock: "🔓", large_green_circle: "🟢", red_circle: "🔴", large_blue_circle: "🔵",
    white_circle: "⚪", yellow_circle: "🟡", arrow_right: "➡️", no_entry: "⛔", no_entry_sign: "🚫", eyes: "👀",
    clipboard: "📋", page_facing_up: "📄", fast_forward: "⏩", repeat: "🔁", stop_sign: "🛑", construction: "🚧",
    gear: "⚙️", memo: "📝", tada: "🎉", bust_in_silhouette: "👤", busts_in_silhouette: "👥", hammer_and_wrench: "🛠️",
    wrench: "🔧", mag: "🔍", bell: "🔔", point_right: "👉", thumbsup: "👍", "+1": "👍", ok_hand: "👌",
    arrows_counterclockwise: "🔄", rewind: "⏪", pause_button: "⏸️", black_square_for_stop: "⏹️", checkered_flag: "🏁",
    scroll: "📜", calendar: "📅", clock3: "🕒", link: "🔗", package: "📦", shield: "🛡️", fire: "🔥", bulb: "💡",
    heavy_minus_sign: "➖", radio_button: "🔘", robot_face: "🤖", information_source: "ℹ️", question: "❓", skull: "💀",
  };
  function emoji(s) { return s.replace(/:([a-z0-9_+\-]+):/g, (m, n) => EMOJI[n] || m); }

  function fmtDate(unix, fmt, fallback) {
    const d = new Date(unix * 1000);
    if (isNaN(d)) return esc(fallback);
    const date = d.toLocaleDateString([], { month: "short", day: "numeric", year: "numeric" });
    const time = d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    const secs = d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
    const today = new Date().toDateString() === d.toDateString();
    return esc(fmt.replace(/\{date_short_pretty\}|\{date_pretty\}|\{date_long_pretty\}/g, today ? "today" : date)
      .replace(/\{date_short\}|\{date\}|\{date_long\}|\{date_num\}/g, date)
      .replace(/\{time_secs\}/g, secs).replace(/\{time\}/g, time));
  }

  // Render Slack mrkdwn to HTML: special <…> tokens and code first (kept
  // away from formatting), then escaping, then *bold* _italic_ ~strike~.
  function mrkdwn(text) {
    const keep = [];
    const hold = (html) => { keep.push(html); return "\u0000" + (keep.length - 1) + "\u0000"; };
    let s = String(text || "");
    s = s.replace(/```([\s\S]*?)```/g, (m, code) => hold("<pre><code>" + esc(code.replace(/^\n/, "")) + "</code></pre>"));
    s = s.replace(/`([^`\n]+)`/g, (m, code) => hold("<code>" + esc(code) + "</code>"));
    s = s.replace(/<([^<>\n]+)>/g, (m, inner) => {
      const [target, label] = inner.split("|", 2);
      if (target.startsWith("@")) {
        const id = target.slice(1);
        const me = id === state.acting ? " me" : "";
        return hold('<span class="mention' + me + '" data-user="' + esc(id) + '">@' + esc(label || userName(id)) + "</span>");
      }
      if (target.startsWith("#")) {
        const ch = (state.data.channels || []).find((c) => c.id === target.slice(1));
        return hold('<span class="mention">#' + esc(label || (ch ? ch.name : target.slice(1))) + "</span>");
      }
      if (target.startsWith("!subteam^")) {
        const gid = target.slice(9);
        const g = (state.data.usergroups || []).find((x) => x.id === gid);
        const mine = g && (g.users || []).includes(state.acting) ? " me" : "";
        return hold('<span class="mention' + mine + '">' + esc(label || (g ? "@" + g.handle : "@group")) + "</span>");
      }
      if (target.startsWith("!date^")) {
        const parts = target.split("^");
        return hold(fmtDate(parseInt(parts[1], 10), parts[2] || "{date} {time}", label || ""));
      }
      if (target === "!here" || target === "!channel" || target === "!everyone") {
        return hold('<span class="mention me">@' + esc(target.slice(1)) + "</span>");
      }
      if (/^(https?:|mailto:)/.test(target)) {
        return hold('<a href="' + esc(target) + '" target="_blank" rel="noopener">' + esc(label || target) + "</a>");
      }
      return m;
    });
    s = esc(s);
    s = s.replace(/(^|[\s(])\*([^*\n]+)\*(?=$|[\s).,:;!?])/g, "$1<b>$2</b>");
    s = s.replace(/(^|[\s(])_([^_\n]+)_(?=$|[\s).,:;!?])/g, "$1<i>$2</i>");
    s = s.replace(/(^|[\s(])~([^~\n]+)~(?=$|[\s).,:;!?])/g, "$1<s>$2</s>");
    s = s.replace(/^&gt; ?(.*)$/gm, "<blockquote>$1</blockquote>");
    s = emoji(s).replace(/\n/g, "<br>");
    return s.replace(/\u0000(\d+)\u0000/g, (m, i) => keep[+i]);
  }
  function textObj(t) {
    if (!t) return "";
    if (typeof t === "string") return mrkdwn(t);
    return t.type === "mrkdwn" ? mrkdwn(t.text) : emoji(esc(t.text)).replace(/\n/g, "<br>");
  }

  // ---------- Block Kit ----------
  function renderElement(e, ctx) {
    if (e.type === "button") {
      const cls = "btn" + (e.style === "primary" ? " btn-primary" : e.style === "danger" ? " btn-danger" : "");
      const b = el("button", { class: cls, type: "button", "data-testid": "block-button", "data-action-id": e.action_id || "",
        "data-value": e.value || "", "data-style": e.style || "", "data-has-confirm": e.confirm ? "true" : null }, emoji(esc(e.text && e.text.text)));
      if (e.url && /^https?:/.test(e.url)) b.addEventListener("click", () => window.open(e.url, "_blank", "noopener"));
      b.addEventListener("click", () => onButton(b, e, ctx));
      return b;
    }
    if (e.type === "image") return el("img", { src: e.image_url, alt: e.alt_text || "" });
    if (e.type === "static_select" || e.type === "overflow" || e.type === "users_select" || e.type === "datepicker") {
      return el("span", { class: "select-mock" }, esc((e.placeholder && e.placeholder.text) || e.type) + " ▾");
    }
    if (e.type === "mrkdwn" || e.type === "plain_text") return el("span", {}, textObj(e));
    return el("span", {}, "");
  }

  function renderBlocks(blocks, ctx) {
    const wrap = el("div", { class: "blocks" });
    for (const b of blocks || []) {
      let n;
      switch (b.type) {
        case "header":
          n = el("div", { class: "blk blk-header" }, textObj(b.text)); break;
        case "section": {
          n = el("div", { class: "blk blk-section" });
          const m = el("div", { class: "sec-main" });
          if (b.text) m.appendChild(el("div", {}, textObj(b.text)));
          if (b.fields && b.fields.length) {
            const f = el("div", { class: "fields" });
            for (const x of b.fields) f.appendChild(el("div", {}, textObj(x)));
            m.appendChild(f);
          }
          n.appendChild(m);
          if (b.accessory) n.appendChild(renderElement(b.accessory, Object.assign({ blockId: b.block_id }, ctx)));
          break;
        }
        case "context":
          n = el("div", { class: "blk blk-context" });
          for (const x of b.elements || []) n.appendChild(renderElement(x, ctx));
          break;
        case "divider":
          n = el("hr", { class: "blk-divider" }); break;
        case "actions":
          n = el("div", { class: "blk blk-actions", "data-block-id": b.block_id });
          for (const x of b.elements || []) n.appendChild(renderElement(x, Object.assign({ blockId: b.block_id }, ctx)));
          break;
        case "image":
          n = el("div", { class: "blk blk-image" });
          n.appendChild(el("img", { src: b.image_url, alt: b.alt_text || "" }));
          break;
        case "rich_text":
          n = el("div", { class: "blk" }, esc(richText(b)));
          break;
        case "input": {
          const e = b.element || {};
          const err = ctx.errors && ctx.errors[b.block_id];
          n = el("div", { class: "blk blk-input" + (err ? " has-error" : ""), "data-block-id": b.block_id });
          const id = "in-" + b.block_id + "-" + (e.action_id || "");
          n.appendChild(el("label", { for: id }, textObj(b.label) + (b.optional ? ' <span class="optional">(optional)</span>' : "")));
          const attrs = { id, "data-testid": "modal-input", "data-block-id": b.block_id, "data-action-id": e.action_id || "",
            placeholder: e.placeholder ? e.placeholder.text : null };
          const f = el(e.multiline ? "textarea" : "input", attrs);
          if (e.initial_value) f.value = e.initial_value;
          n.appendChild(f);
          if (b.hint) n.appendChild(el("div", { class: "hint" }, textObj(b.hint)));
          if (err) n.appendChild(el("div", { class: "field-error", "data-testid": "modal-error" }, esc(err)));
          break;
        }
        default:
          n = el("div", { class: "blk" }, "");
      }
      wrap.appendChild(n);
    }
    return wrap;
  }
  function richText(b) {
    const out = [];
    const walk = (x) => {
      if (!x) return;
      if (x.type === "text") out.push(x.text);
      else if (x.type === "user") out.push("@" + userName(x.user_id));
      else if (x.type === "link") out.push(x.text || x.url);
      (x.elements || []).forEach(walk);
    };
    walk(b);
    return out.join("");
  }

  // ---------- buttons and the confirm dialog ----------
  function onButton(btn, e, ctx) {
    if (e.url) return;
    const go = () => click(btn, e, ctx);
    if (e.confirm) confirmDialog(e.confirm, go); else go();
  }
  function confirmDialog(c, onOK) {
    $("confirm-title").innerHTML = textObj(c.title) || "Are you sure?";
    $("confirm-text").innerHTML = textObj(c.text);
    const ok = $("confirm-ok"), deny = $("confirm-deny");
    ok.innerHTML = textObj(c.confirm) || "Yes";
    deny.innerHTML = textObj(c.deny) || "Cancel";
    ok.className = "btn " + (c.style === "danger" ? "btn-danger solid" : "btn-primary");
    const close = () => { $("confirm").hidden = true; ok.onclick = deny.onclick = null; };
    ok.onclick = () => { close(); onOK(); };
    deny.onclick = close;
    $("confirm").hidden = false;
    ok.focus();
  }
  async function click(btn, e, ctx) {
    btn.disabled = true;
    try {
      const body = ctx.home
        ? { user: state.acting, action_id: e.action_id, value: e.value || "", home: true }
        : { user: state.acting, channel: ctx.channel, ts: ctx.ts, action_id: e.action_id, value: e.value || "" };
      const r = await post("/ui/click", body);
      if (!r.ok) toast("kongbot did not respond: " + r.error, true);
    } catch (err) {
      toast("click failed: " + err, true);
    } finally {
      btn.disabled = false;
    }
  }

  // ---------- messages ----------
  function renderFiles(files) {
    const frag = document.createDocumentFragment();
    for (const f of files || []) {
      const ext = (f.name.split(".").pop() || "file").slice(0, 4).toUpperCase();
      const box = el("div", { class: "file", "data-testid": "file", "data-file-id": f.id });
      box.appendChild(el("div", { class: "file-icon" }, esc(ext)));
      const info = el("div", {});
      info.appendChild(el("div", { class: "file-name" }, '<a href="/files/' + esc(f.id) + '" target="_blank">' + esc(f.title || f.name) + "</a>"));
      info.appendChild(el("div", { class: "file-meta" }, esc(f.name) + " · " + (f.size >= 1024 ? (f.size / 1024).toFixed(1) + " KB" : f.size + " B") +
        ' · <a href="/files/' + esc(f.id) + '?download=1">Download</a>'));
      box.appendChild(info);
      frag.appendChild(box);
    }
    return frag;
  }

  function renderMessage(m, opts) {
    const compact = opts.prev && !m.ephemeral && !opts.prev.ephemeral && opts.prev.user === m.user &&
      Math.abs(parseFloat(m.ts) - parseFloat(opts.prev.ts)) < 300 && !opts.prev.reply_count;
    const row = el("div", { class: "msg" + (compact ? " compact" : "") + (m.ephemeral ? " ephemeral" : ""),
      "data-testid": m.ephemeral ? "ephemeral" : "message", "data-ts": m.ts, "data-user": m.user,
      "data-ephemeral": m.ephemeral ? "true" : null, id: "m-" + m.ts.replace(".", "-") + (opts.inThread ? "-t" : "") });
    row.appendChild(el("img", { class: "avatar", src: avatar(m.user), alt: "" }));
    const main = el("div", { class: "body" });
    if (m.ephemeral) main.appendChild(el("div", { class: "only-you" }, "👁 Only visible to you"));
    if (!compact) {
      const meta = el("div", { class: "meta" });
      meta.appendChild(el("span", { class: "name" }, esc(displayName(m.user))));
      if (m.bot_id || m.user === "USLACKBOT") meta.appendChild(el("span", { class: "app-badge" }, "APP"));
      const t = tsDate(m.ts);
      meta.appendChild(el("time", { datetime: t.toISOString(), title: t.toLocaleString() }, esc(hhmm(t))));
      if (m.edits) meta.appendChild(el("span", { class: "edited" }, "(edited)"));
      main.appendChild(meta);
    }
    if (m.reply_broadcast && !opts.inThread) main.appendChild(el("div", { class: "also-sent" }, "replied to a thread"));
    const ctx = { channel: m.channel, ts: m.ts };
    if (m.blocks && m.blocks.length) main.appendChild(renderBlocks(m.blocks, ctx));
    else main.appendChild(el("div", { class: "text" }, mrkdwn(m.text)));
    main.appendChild(renderFiles(m.files));
    if (!opts.inThread && m.reply_count) {
      const rs = el("button", { class: "replies", type: "button", "data-testid": "thread-link", "data-thread-ts": m.ts });
      const ch = state.data.channels.find((c) => c.id === m.channel);
      const seen = new Set(((ch && ch.threads[m.ts]) || []).map((r) => r.user));
      for (const u of [...seen].slice(0, 3)) rs.appendChild(el("img", { src: avatar(u), alt: "" }));
      rs.appendChild(el("span", {}, m.reply_count + (m.reply_count === 1 ? " reply" : " replies")));
      if (m.last_reply) rs.appendChild(el("span", { class: "file-meta" }, "Last reply " + esc(hhmm(tsDate(m.last_reply)))));
      rs.addEventListener("click", () => openThread(m.ts));
      main.appendChild(rs);
    }
    row.appendChild(main);
    return row;
  }

  function currentChannel() {
    return (state.data.channels || []).find((c) => c.id === state.channel) || state.data.channels[0];
  }

  function renderList(container, msgs, opts) {
    const atBottom = container.scrollHeight - container.scrollTop - container.clientHeight < 40;
    const keepTop = container.scrollTop;
    container.innerHTML = "";
    if (!msgs.length && opts.empty) container.appendChild(el("div", { class: "empty" }, opts.empty));
    let prev = null;
    for (const m of msgs) {
      if (opts.parent && prev === opts.parentMsg) {
        const n = msgs.length - 1;
        container.appendChild(el("div", { class: "reply-sep" }, n + (n === 1 ? " reply" : " replies")));
      }
      container.appendChild(renderMessage(m, { prev, inThread: opts.inThread }));
      prev = m;
    }
    if (atBottom || opts.forceBottom) container.scrollTop = container.scrollHeight; else container.scrollTop = keepTop;
  }

  // ---------- rendering ----------
  function render() {
    const d = state.data;
    if (!d) return;
    $("ws-name").textContent = d.team.name;
    const bot = user(d.bot.user_id);
    $("bot-name").textContent = bot ? bot.name : "app";
    // user switcher
    const sw = $("user-switcher");
    if (sw.options.length !== d.users.filter((u) => !u.is_bot).length) {
      sw.innerHTML = "";
      for (const u of d.users) {
        if (u.is_bot) continue;
        const tags = [];
        if ((u.groups || []).length) tags.push(u.groups.map((g) => "@" + g).join(" "));
        if (u.is_restricted || u.is_ultra_restricted) tags.push("guest");
        if (u.deleted) tags.push("deactivated");
        sw.appendChild(el("option", { value: u.id }, esc(u.real_name + " (@" + u.name + ")" + (tags.length ? " · " + tags.join(", ") : ""))));
      }
    }
    if (!user(state.acting) || user(state.acting).is_bot) state.acting = d.users.find((u) => !u.is_bot).id;
    sw.value = state.acting;
    const me = user(state.acting);
    const info = $("acting-info");
    info.innerHTML = "";
    info.appendChild(el("span", { class: "badge" }, esc(me.title || "member")));
    for (const g of me.groups || []) info.appendChild(el("span", { class: "badge lead" }, "@" + esc(g)));
    if (me.is_restricted || me.is_ultra_restricted) info.appendChild(el("span", { class: "badge guest" }, "guest"));
    if (me.deleted) info.appendChild(el("span", { class: "badge gone" }, "deactivated"));

    // channels
    if (!state.channel) state.channel = d.channels[0].id;
    if (!d.channels.some((c) => c.id === state.channel)) { state.channel = d.channels[0].id; state.thread = ""; }
    const list = $("channel-list"), dms = $("dm-list");
    list.innerHTML = "";
    dms.innerHTML = "";
    for (const c of d.channels) {
      const label = c.im ? '<img class="dm-avatar" src="' + avatar(d.bot.user_id) + '" alt="">' + esc(c.name) : "# " + esc(c.name);
      const a = el("a", { href: "#", class: "nav-item" + (state.view === "channel" && c.id === state.channel ? " active" : ""),
        "data-testid": c.im ? "nav-dm" : "nav-channel", "data-channel": c.id }, label);
      a.addEventListener("click", (ev) => { ev.preventDefault(); state.view = "channel"; state.channel = c.id; state.thread = ""; render(); });
      (c.im ? dms : list).appendChild(el("li")).appendChild(a);
    }
    $("dm-title").hidden = !d.channels.some((c) => c.im);
    $("nav-home").classList.toggle("active", state.view === "home");

    // bot status
    const st = $("bot-status");
    st.innerHTML = d.sockets > 0
      ? '<span class="dot on"></span>' + esc($("bot-name").textContent) + " connected · Socket Mode (" + d.sockets + ")"
      : d.http_mode ? '<span class="dot on"></span>' + esc($("bot-name").textContent) + " · HTTP mode"
        : '<span class="dot off"></span>' + esc($("bot-name").textContent) + " is not connected";

    const ch = currentChannel();
    const onHome = state.view === "home";
    $("messages").hidden = onHome;
    $("home").hidden = !onHome;
    $("composer").hidden = onHome;
    if (onHome) {
      $("main-title").textContent = $("bot-name").textContent;
      $("main-topic").textContent = "App Home · as seen by " + me.real_name;
      $("members").innerHTML = "";
      renderHome();
    } else {
      $("main-title").textContent = (ch.im ? "" : "# ") + ch.name;
      $("main-topic").textContent = ch.topic || "";
      $("composer-input").placeholder = "Message " + (ch.im ? "" : "#") + ch.name + " — try /kong upgrade start";
      const mem = $("members");
      mem.innerHTML = "";
      const members = ch.im ? d.users.filter((u) => u.id === state.acting || u.id === d.bot.user_id) : d.users.filter((u) => !u.deleted);
      for (const u of members) mem.appendChild(el("img", { src: avatar(u.id), title: u.real_name, alt: "" }));
      renderList($("messages"), ch.messages || [], { empty: "This is the very beginning of <b>#" + esc(ch.name) + "</b>. Type <code>/kong help</code> to start.", forceBottom: state.firstPaint });
      state.firstPaint = false;
    }
    renderThread();
    renderModal();
  }

  // The open modal is redrawn only when the bot changes it (or refuses a
  // submission), so text being typed survives other updates.
  function renderModal() {
    const m = state.data.modal;
    const box = $("view-modal");
    if (!m) { box.hidden = true; state.modalKey = ""; return; }
    const key = m.id + "|" + m.hash + "|" + JSON.stringify(m.errors || {});
    if (key === state.modalKey && !box.hidden) return;
    const typed = {};
    box.querySelectorAll("[data-testid=modal-input]").forEach((f) => { typed[f.id] = f.value; });
    state.modalKey = key;
    const v = m.view;
    $("view-title").innerHTML = textObj(v.title) || "";
    $("view-submit").innerHTML = textObj(v.submit) || "Submit";
    $("view-submit").hidden = !v.submit && !(v.blocks || []).some((b) => b.type === "input");
    $("view-close").innerHTML = textObj(v.close) || "Cancel";
    const body = $("view-body");
    body.innerHTML = "";
    body.appendChild(renderBlocks(v.blocks || [], { modal: true, errors: m.errors || {} }));
    body.querySelectorAll("[data-testid=modal-input]").forEach((f) => { if (typed[f.id] !== undefined) f.value = typed[f.id]; });
    box.hidden = false;
  }
  async function modalAction(action) {
    const values = {};
    $("view-body").querySelectorAll("[data-testid=modal-input]").forEach((f) => {
      (values[f.dataset.blockId] = values[f.dataset.blockId] || {})[f.dataset.actionId] = f.value;
    });
    $("view-submit").disabled = true;
    try {
      const r = await post("/ui/modal", { user: state.acting, action, values });
      if (!r.ok) toast((action === "close" ? "close: " : "submit: ") + r.error, true);
    } finally {
      $("view-submit").disabled = false;
    }
  }

  function renderHome() {
    const box = $("home");
    box.innerHTML = "";
    const tabs = el("div", { class: "home-tabs" });
    tabs.appendChild(el("span", {}, "Home"));
    box.appendChild(tabs);
    const v = state.data.home;
    if (!v) {
      box.appendChild(el("div", { class: "empty", "data-testid": "home-empty" }, "Nothing published yet for " + esc(displayName(state.acting)) + "."));
      return;
    }
    box.appendChild(renderBlocks(v.blocks || [], { home: true }));
  }

  function renderThread() {
    const panel = $("thread");
    if (!state.thread || state.view !== "channel") { panel.hidden = true; return; }
    const ch = currentChannel();
    const all = (ch.messages || []).concat(Object.values(ch.threads || {}).flat());
    const parent = all.find((m) => m.ts === state.thread);
    if (!parent) { panel.hidden = true; return; }
    panel.hidden = false;
    panel.setAttribute("data-thread-ts", state.thread);
    $("thread-sub").textContent = "#" + ch.name;
    const replies = (ch.threads[state.thread] || []).slice().sort((a, b) => parseFloat(a.ts) - parseFloat(b.ts));
    const msgs = [parent].concat(replies);
    renderList($("thread-messages"), msgs, { inThread: true, parent: true, parentMsg: parent });
  }

  function openThread(ts) {
    state.thread = ts;
    state.view = "channel";
    renderThread();
    const box = $("thread-messages");
    box.scrollTop = box.scrollHeight;
    $("thread-input").focus();
  }

  // ---------- data ----------
  let loading = false, again = false;
  async function refresh() {
    if (loading) { again = true; return; }
    loading = true;
    try {
      const r = await fetch("/ui/state?user=" + encodeURIComponent(state.acting));
      const data = await r.json();
      document.body.setAttribute("data-version", data.version);
      // Most changes (a Web API call recorded, a delivery timed) do not alter
      // what is drawn; keep the DOM, and the element under the pointer, as is.
      const key = JSON.stringify(Object.assign({}, data, { version: 0 }));
      if (key === state.key) return;
      state.key = key;
      state.data = data;
      render();
    } catch (err) {
      console.error(err);
    } finally {
      loading = false;
      if (again) { again = false; refresh(); }
    }
  }

  function connect() {
    const es = new EventSource("/ui/events");
    es.addEventListener("change", refresh);
    es.onerror = () => { es.close(); setTimeout(connect, 1000); };
  }

  // ---------- composer ----------
  function autosize(t) { t.style.height = "auto"; t.style.height = Math.min(t.scrollHeight, 160) + "px"; }
  async function send(input, threadTS, button) {
    const text = input.value.trim();
    if (!text) return;
    const ch = currentChannel();
    const isCmd = text.startsWith("/");
    input.value = "";
    autosize(input);
    button.disabled = true;
    try {
      const r = await post(isCmd ? "/ui/command" : "/ui/message", { user: state.acting, channel: ch.id, text, thread_ts: threadTS || "" });
      if (!r.ok && !isCmd) toast(r.error, true);
      if (!r.ok && isCmd) toast(text.split(" ")[0] + " failed: " + r.error, true);
    } catch (err) {
      toast("send failed: " + err, true);
    } finally {
      button.disabled = false;
      input.focus();
    }
  }
  function wireComposer(form, input, threadFn) {
    const btn = form.querySelector("button");
    form.addEventListener("submit", (ev) => { ev.preventDefault(); send(input, threadFn(), btn); });
    input.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) { ev.preventDefault(); send(input, threadFn(), btn); }
    });
    input.addEventListener("input", () => autosize(input));
  }

  // ---------- boot ----------
  function boot() {
    const q = new URLSearchParams(location.search);
    if (q.get("as")) state.acting = q.get("as");
    const m = location.pathname.match(/^\/archives\/([A-Z0-9]+)\/p(\d{10})(\d{6})$/);
    if (m) {
      state.channel = m[1];
      state.thread = q.get("thread_ts") || (m[2] + "." + m[3]);
    }
    state.firstPaint = true;
    $("user-switcher").addEventListener("change", (ev) => {
      state.acting = ev.target.value;
      localStorage.setItem("localslack.acting", state.acting);
      if (state.view === "home") post("/ui/home", { user: state.acting });
      refresh();
    });
    $("nav-home").addEventListener("click", (ev) => {
      ev.preventDefault();
      state.view = "home";
      render();
      post("/ui/home", { user: state.acting }).then((r) => { if (!r.ok) toast("App Home: " + r.error, true); });
    });
    $("thread-close").addEventListener("click", () => { state.thread = ""; renderThread(); });
    document.addEventListener("keydown", (ev) => { if (ev.key === "Escape" && !$("confirm").hidden) $("confirm-deny").click(); });
    $("view-form").addEventListener("submit", (ev) => { ev.preventDefault(); modalAction("submit"); });
    $("view-close").addEventListener("click", () => modalAction("close"));
    $("view-x").addEventListener("click", () => modalAction("close"));
    wireComposer($("composer"), $("composer-input"), () => "");
    wireComposer($("thread-composer"), $("thread-input"), () => state.thread);
    refresh().then(connect);
  }
  boot();
})();
