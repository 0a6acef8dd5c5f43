// orch ui: live updates over server-sent events, no framework, no build step.
// /events sends the steps' statuses ({"steps": {"WF/STEP": status}}) after every change
// to the state; elements with data-step get their data-status and s-STATUS class set in
// place, and [data-refresh] regions are re-read from the same URL when any status moved.
"use strict";
(function () {
  const liveBadge = document.getElementById("live");
  let lastSteps = null;
  let refreshing = false;
  let again = false;

  function setStatus(el, status) {
    if (el.dataset.status === status) return;
    for (const c of Array.from(el.classList)) if (c.startsWith("s-")) el.classList.remove(c);
    el.classList.add("s-" + status);
    el.dataset.status = status;
    const title = el.querySelector("title");
    if (title) title.textContent = title.textContent.replace(/: [\w-]+/, ": " + status);
    if (el.classList.contains("pill")) el.textContent = status;
  }

  async function fetchDoc(url) {
    const resp = await fetch(url, { credentials: "same-origin" });
    if (!resp.ok) return null;
    return new DOMParser().parseFromString(await resp.text(), "text/html");
  }

  // Re-read every [data-refresh] region: from its data-src (a fragment) if it has one,
  // else from this page's URL; one request per source, never two at once.
  async function refreshRegions() {
    const regions = Array.from(document.querySelectorAll("[data-refresh][id]"));
    if (!regions.length) return;
    if (refreshing) { again = true; return; }
    refreshing = true;
    try {
      const bySource = new Map();
      for (const r of regions) {
        const src = r.dataset.src || location.href;
        if (!bySource.has(src)) bySource.set(src, []);
        bySource.get(src).push(r);
      }
      for (const [src, rs] of bySource) {
        const doc = await fetchDoc(src);
        if (!doc) continue;
        for (const r of rs) {
          const fresh = doc.getElementById(r.id);
          if (fresh) r.replaceWith(document.importNode(fresh, true));
        }
      }
      bindActions();
    } finally {
      refreshing = false;
      if (again) { again = false; refreshRegions(); }
    }
  }

  function onState(ev) {
    const snap = JSON.parse(ev.data);
    const steps = snap.steps || {};
    for (const el of document.querySelectorAll("[data-step]")) {
      const s = steps[el.dataset.step];
      if (s) setStatus(el, s);
    }
    const key = JSON.stringify(steps);
    if (lastSteps !== null && key !== lastSteps) refreshRegions();
    lastSteps = key;
    document.body.dataset.seq = snap.seq;
  }

  function connect() {
    if (!window.EventSource) return;
    const es = new EventSource("/events");
    es.addEventListener("state", onState);
    es.onopen = () => { liveBadge.textContent = "● live"; liveBadge.classList.add("on"); };
    es.onerror = () => { liveBadge.textContent = "○ reconnecting"; liveBadge.classList.remove("on"); };
  }

  function tail() {
    const log = document.getElementById("log");
    if (!log || !log.dataset.tail || !window.EventSource) return;
    const es = new EventSource(log.dataset.tail);
    es.addEventListener("log", (ev) => {
      const d = JSON.parse(ev.data);
      const atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
      log.insertAdjacentHTML("beforeend", d.html);  // server-escaped (runner/ui/ansi.py)
      if (atEnd) log.scrollTop = log.scrollHeight;
    });
    es.addEventListener("end", (ev) => {
      es.close();
      const st = document.getElementById("task-status");
      if (st) setStatus(st, JSON.parse(ev.data).status);
    });
  }

  function bindActions() {
    for (const form of document.querySelectorAll("form.action")) {
      if (form.dataset.bound) continue;
      form.dataset.bound = "1";
      form.addEventListener("submit", async (e) => {
        e.preventDefault();
        const button = form.querySelector("button");
        if (button) button.disabled = true;
        try {
          const resp = await fetch(form.action, { method: "POST", body: new URLSearchParams(new FormData(form)), credentials: "same-origin" });
          const data = await resp.json();
          if (!resp.ok) alert(data.error || resp.statusText);
        } finally {
          if (button) button.disabled = false;
          refreshRegions();
        }
      });
    }
  }

  // the cookie holds the token now: drop it from the address bar, as JupyterLab does,
  // so the browser's history, a bookmark or a screen share never shows it
  if (new URLSearchParams(location.search).has("token")) {
    const clean = new URL(location.href);
    clean.searchParams.delete("token");
    history.replaceState(null, "", clean.pathname + clean.search + clean.hash);
  }
  // a filter that applies on change (no inline handler: the pages' CSP forbids them)
  for (const s of document.querySelectorAll("select[data-autosubmit]")) {
    s.addEventListener("change", () => s.form.submit());
  }
  connect();
  tail();
  bindActions();
  if (document.querySelector("[data-refresh][data-src]")) refreshRegions();
})();
