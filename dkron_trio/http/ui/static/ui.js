// dkron-trio UI script: every change goes through the JSON API (/v1/...); pages refresh
// their data-live parts by fetching their own URL again; running output is followed over
// the API's WebSocket. Plain JavaScript, no library.
"use strict";

(function () {
  const notice = () => document.getElementById("notice");

  function say(message, kind) {
    const el = notice();
    if (!el) return;
    el.textContent = message;
    el.className = "banner " + (kind || "ok");
    el.hidden = false;
  }

  async function api(method, url, body) {
    const init = { method: method, headers: {} };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(url, init);
    if (response.status === 401) {
      // ACLs are on and the login cookie is gone or its token was deleted: log in again.
      location.assign("/ui/login?next=" + encodeURIComponent(location.pathname + location.search));
    }
    let data = null;
    const text = await response.text();
    if (text) {
      try { data = JSON.parse(text); } catch (e) { data = { error: text }; }
    }
    return { status: response.status, ok: response.ok, data: data };
  }

  function errorOf(result) {
    return (result.data && result.data.error) || ("HTTP " + result.status);
  }

  function withForce(url) {
    return url + (url.indexOf("?") >= 0 ? "&" : "?") + "force=true";
  }

  // ---- live parts ------------------------------------------------------------------------

  let refreshing = false;

  async function refreshLive() {
    const parts = Array.from(document.querySelectorAll("[data-live]"));
    if (refreshing || !parts.length || document.hidden) return;
    const idle = parts.filter((p) => !p.querySelector("[data-follow].following"));
    if (!idle.length) return;
    refreshing = true;
    try {
      const response = await fetch(location.href, { headers: { "X-Live": "1" } });
      if (!response.ok) return;
      const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
      for (const part of idle) {
        const next = fresh.getElementById(part.id);
        if (next) swap(part, next);
      }
    } catch (e) {
      // The server may be restarting; the next tick tries again.
    } finally {
      refreshing = false;
    }
  }

  function swap(part, next) {
    const focused = document.activeElement;
    const key = focused && part.contains(focused) ? focusKey(focused) : null;
    const open = new Set(
      Array.from(part.querySelectorAll("details[open] pre[id]")).map((p) => p.id)
    );
    part.innerHTML = next.innerHTML;
    for (const id of open) {
      const pre = document.getElementById(id);
      if (pre) pre.closest("details").open = true;
    }
    if (key) {
      const again = part.querySelector(key);
      if (again) again.focus();
    }
    wire(part);
  }

  function focusKey(el) {
    if (el.id) return "#" + CSS.escape(el.id);
    for (const attr of ["data-url", "data-full-output", "href"]) {
      const value = el.getAttribute(attr);
      if (value) return "[" + attr + '="' + CSS.escape(value) + '"]';
    }
    return null;
  }

  function startLive() {
    const parts = document.querySelectorAll("[data-live]");
    if (!parts.length) return;
    const every = Math.min(...Array.from(parts).map((p) => Number(p.dataset.live) || 3000));
    setInterval(refreshLive, every);
  }

  // ---- following running output -------------------------------------------------------

  function follow(pre) {
    if (pre.classList.contains("following") || pre.dataset.followed) return;
    pre.classList.add("following");
    pre.dataset.followed = "1";
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    const socket = new WebSocket(scheme + location.host + pre.dataset.follow);
    let first = true;
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data);
      if (message.type === "output") {
        const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
        pre.textContent = first ? message.data : pre.textContent + message.data;
        first = false;
        if (atEnd) pre.scrollTop = pre.scrollHeight;
      } else if (message.type === "done") {
        pre.dataset.status = message.execution.status;
      }
    };
    socket.onclose = () => {
      pre.classList.remove("following");
      refreshLive();
    };
  }

  // ---- buttons -----------------------------------------------------------------------------

  async function act(button) {
    const { method, url } = button.dataset;
    if (button.dataset.confirm && !window.confirm(button.dataset.confirm)) return;
    button.disabled = true;
    try {
      let result = await api(method, url);
      if (result.status === 409 && button.dataset.forceAsk) {
        if (!window.confirm(errorOf(result) + "\n\nRun it anyway?")) return;
        result = await api(method, withForce(url));
      }
      if (!result.ok) {
        say(errorOf(result), "bad");
        return;
      }
      say(button.dataset.done || "Done", "ok");
      const then = button.dataset.then;
      if (then === "reload") location.reload();
      else if (then === "live") refreshLive();
      else if (then) location.assign(then);
      else refreshLive();
    } finally {
      button.disabled = false;
    }
  }

  async function loadFull(button) {
    const pre = document.getElementById(button.dataset.target);
    button.disabled = true;
    const result = await api("GET", button.dataset.fullOutput);
    button.disabled = false;
    if (!result.ok) {
      say(errorOf(result), "bad");
      return;
    }
    pre.textContent = result.data.output;
    button.remove();
    pre.focus();
  }

  // ---- bulk actions on the jobs list ---------------------------------------------------

  const BULK = {
    run: { method: "POST", path: "/run", verb: "Started", confirm: null },
    toggle: { method: "POST", path: "/toggle", verb: "Toggled", confirm: null },
    delete: { method: "DELETE", path: "", verb: "Deleted", confirm: "Delete" },
  };

  function selected() {
    return Array.from(document.querySelectorAll('#bulk input[name="job"]:checked')).map(
      (box) => box.value
    );
  }

  function countSelected() {
    const out = document.getElementById("selected-count");
    if (out) out.textContent = selected().length + " selected";
  }

  async function bulk(kind) {
    const names = selected();
    const spec = BULK[kind];
    if (!names.length) {
      say("Select jobs first.", "bad");
      return;
    }
    if (spec.confirm && !window.confirm(spec.confirm + " " + names.length + " job(s): " +
        names.join(", ") + "?")) return;
    const failed = [];
    for (const name of names) {
      const url = "/v1/jobs/" + encodeURIComponent(name) + spec.path;
      const result = await api(spec.method, url);
      if (!result.ok) failed.push(name + ": " + errorOf(result));
    }
    const done = names.length - failed.length;
    sessionStorage.setItem(
      "dkron-notice",
      JSON.stringify({
        text: spec.verb + " " + done + " of " + names.length + " job(s)." +
          (failed.length ? " Failed: " + failed.join("; ") : ""),
        kind: failed.length ? "bad" : "ok",
      })
    );
    location.reload();
  }

  // ---- the job form ----------------------------------------------------------------------

  function fieldOf(error, fields) {
    // ValidationError answers read "<field>: <message>"; nested fields ("executor_config.command",
    // "tags") belong to their top-level input.
    let best = null;
    for (const name of fields) {
      if (error.startsWith(name) && /^[:.[ ]/.test(error.slice(name.length)) &&
          (!best || name.length > best.length)) best = name;
    }
    return best;
  }

  function clearErrors(form) {
    for (const p of form.querySelectorAll(".error")) {
      p.hidden = true;
      p.textContent = "";
    }
    for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
  }

  function showError(form, name, message) {
    const input = name && form.querySelector("#j-" + name);
    const out = document.getElementById(input ? "err-" + name : "err-form");
    out.textContent = message;
    out.hidden = false;
    if (input) {
      input.setAttribute("aria-invalid", "true");
      input.focus();
    } else {
      out.scrollIntoView({ block: "center" });
    }
  }

  function readForm(form) {
    const body = {};
    for (const input of form.querySelectorAll("[data-kind]")) {
      const kind = input.dataset.kind;
      if (kind === "bool") body[input.name] = input.checked;
      else if (kind === "int") {
        if (input.value.trim() === "") continue;
        const n = Number(input.value);
        if (!Number.isInteger(n)) throw { field: input.name, message: "must be a whole number" };
        body[input.name] = n;
      } else if (kind === "json") {
        const text = input.value.trim();
        if (text === "") continue;
        try { body[input.name] = JSON.parse(text); } catch (e) {
          throw { field: input.name, message: "not valid JSON: " + e.message };
        }
      } else body[input.name] = input.value.trim();
    }
    return body;
  }

  async function submitJob(form, event) {
    event.preventDefault();
    clearErrors(form);
    const fields = Array.from(form.querySelectorAll("[data-kind]")).map((i) => i.name);
    let body;
    try { body = readForm(form); } catch (problem) {
      showError(form, problem.field, problem.field + ": " + problem.message);
      return;
    }
    const submit = form.querySelector('[type="submit"]');
    submit.disabled = true;
    try {
      if (form.dataset.create === "true" && body.name) {
        const existing = await api("GET", "/v1/jobs/" + encodeURIComponent(body.name));
        if (existing.ok) {
          showError(form, "name", "name: a job named " + body.name + " already exists");
          return;
        }
      }
      const result = await api(form.dataset.method, form.dataset.api, body);
      if (!result.ok) {
        const message = errorOf(result);
        showError(form, result.status === 404 ? "parent_job" : fieldOf(message, fields), message);
        return;
      }
      sessionStorage.setItem(
        "dkron-notice", JSON.stringify({ text: "Saved " + result.data.name + ".", kind: "ok" })
      );
      location.assign("/ui/jobs/" + encodeURIComponent(result.data.name));
    } finally {
      submit.disabled = false;
    }
  }

  // ---- wiring ----------------------------------------------------------------------------

  function wire(root) {
    for (const pre of root.querySelectorAll("[data-follow]")) follow(pre);
  }

  document.addEventListener("click", (event) => {
    const target = event.target.closest("button");
    if (!target) return;
    if (target.dataset.url && target.dataset.method) act(target);
    else if (target.dataset.fullOutput) loadFull(target);
    else if (target.dataset.bulk) bulk(target.dataset.bulk);
  });

  document.addEventListener("change", (event) => {
    if (event.target.id === "select-all") {
      for (const box of document.querySelectorAll('#bulk input[name="job"]')) {
        box.checked = event.target.checked;
      }
    }
    if (event.target.closest("#bulk")) countSelected();
  });

  document.addEventListener("keydown", (event) => {
    const typing = /^(INPUT|TEXTAREA|SELECT)$/.test(document.activeElement.tagName);
    if (event.key === "/" && !typing) {
      const search = document.getElementById("f-q");
      if (search) {
        event.preventDefault();
        search.focus();
      }
    }
  });

  document.addEventListener("DOMContentLoaded", () => {
    const stored = sessionStorage.getItem("dkron-notice");
    if (stored) {
      sessionStorage.removeItem("dkron-notice");
      const { text, kind } = JSON.parse(stored);
      say(text, kind);
    }
    const form = document.getElementById("job-form");
    if (form) form.addEventListener("submit", (event) => submitJob(form, event));
    wire(document);
    startLive();
    countSelected();
  });
})();
