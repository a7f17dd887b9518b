"use strict";
// covey's dashboard: reads /api/overview and draws it; reads it again when the swarm
// reports an event (server-sent, /api/events), and every 10 s in case one was missed.
// Everything from the swarm goes into the page as text, never as HTML.
(() => {
  const $ = (selector) => document.querySelector(selector);

  // An element with attributes (`class`, `data-*`, `title`...) and children (nodes or text).
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v !== undefined && v !== null) e.setAttribute(k, String(v));
    }
    for (const c of children) if (c !== null && c !== undefined) e.append(c);
    return e;
  }

  function ago(seconds) {
    const s = Math.max(0, Math.round(Date.now() / 1000 - seconds));
    if (s < 60) return `${s}s ago`;
    if (s < 3600) return `${Math.floor(s / 60)}m ago`;
    if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
    return `${Math.floor(s / 86400)}d ago`;
  }

  function drawNodes(nodes) {
    const rows = nodes.map((n) =>
      el("tr", { "data-node": n.id, "data-state": n.state, "data-hostname": n.hostname },
        el("td", { class: "muted" }, n.id.slice(0, 12)),
        el("td", {}, n.hostname),
        el("td", {}, n.role, n.leader ? el("span", { class: "badge" }, "leader") : null),
        el("td", {}, el("span", { class: `state ${n.state}`, title: n.message }, n.state)),
        el("td", {}, n.availability),
        el("td", {}, n.platform),
        el("td", {}, n.board || ""),
        el("td", {},
          ...Object.entries(n.labels).map(([k, v]) => el("span", { class: "label" }, `${k}=${v}`)),
          ...Object.entries(n.engine_labels).map(([k, v]) =>
            el("span", { class: "label engine", title: "engine label (covey daemon --label)" }, `${k}=${v}`))),
        el("td", { class: "muted" }, n.addr)));
    $("#nodes tbody").replaceChildren(...rows);
  }

  // A node's name: its hostname, with its ID where hostnames repeat.
  function nodeNames(nodes) {
    const seen = new Map();
    for (const n of nodes) seen.set(n.hostname, (seen.get(n.hostname) || 0) + 1);
    return new Map(nodes.map((n) => [n.id,
      n.hostname && seen.get(n.hostname) === 1 ? n.hostname : `${n.hostname} ${n.id.slice(0, 6)}`.trim()]));
  }

  function drawServices(services, nodes) {
    const byId = new Map(nodes.map((n) => [n.id, n]));
    const names = nodeNames(nodes);
    const rows = services.map((s) => {
      const perNode = new Map();
      for (const t of s.tasks) {
        const key = t.node_id || "";
        if (!perNode.has(key)) perNode.set(key, []);
        perNode.get(key).push(t);
      }
      const where = [...perNode.entries()]
        .sort(([a], [b]) => (names.get(a) || a).localeCompare(names.get(b) || b))
        .map(([nodeId, tasks]) => {
          const node = byId.get(nodeId);
          const down = node && node.state !== "ready";
          return el("span", { class: "where", "data-node": nodeId },
            el("b", {}, nodeId ? (names.get(nodeId) || nodeId.slice(0, 12)) : "not placed"),
            ...tasks.map((t) => el("span", {
              class: `task ${t.state}${down ? " stale" : ""}`,
              "data-task": t.id, "data-node": t.node_id, "data-state": t.state,
              title: [t.message, t.error].filter(Boolean).join(": "),
            }, t.name)));
        });
      return el("tr", { "data-service": s.name },
        el("td", {}, s.name),
        el("td", {}, s.mode),
        el("td", { class: "muted" }, s.image),
        el("td", {}, `${s.running}/${s.desired}`),
        el("td", {}, ...where));
    });
    $("#services tbody").replaceChildren(...rows);
  }

  function drawFailures(failures) {
    const items = failures.map((t) =>
      el("li", { "data-task": t.id },
        el("b", {}, t.name), ` on ${t.node || "no node"}: ${t.state}`,
        t.error ? `: ${t.error}` : "",
        t.exit_code ? ` (exit ${t.exit_code})` : "",
        " ", el("time", {}, ago(t.since))));
    $("#failures").replaceChildren(...(items.length ? items : [el("li", { class: "muted" }, "none")]));
  }

  // What changed, as the event tells it: `x.old`/`x.new` pairs, a task's state and error.
  function details(e) {
    const a = e.attributes;
    const parts = [];
    for (const [k, v] of Object.entries(a)) {
      if (k.endsWith(".new")) parts.push(`${k.slice(0, -4)}: ${a[k.slice(0, -4) + ".old"] || "—"} → ${v}`);
    }
    if (e.type === "task") {
      if (a.state) parts.push(a.state);
      if (a.error) parts.push(a.error);
    }
    return parts.join(", ");
  }

  function drawEvents(events) {
    const items = events.slice().reverse().map((e) =>
      el("li", { "data-type": e.type, "data-action": e.action },
        el("time", {}, new Date(e.time).toLocaleTimeString()), " ",
        el("b", {}, `${e.type} ${e.action}`), " ",
        e.attributes.name || e.actor.slice(0, 12), " ",
        el("span", { class: "muted" }, details(e))));
    $("#events").replaceChildren(...(items.length ? items : [el("li", { class: "muted" }, "none yet")]));
  }

  const count = (n, what) => `${n} ${what}${n === 1 ? "" : "s"}`;

  function drawSummary(o) {
    const ready = o.nodes.filter((n) => n.state === "ready").length;
    const running = o.services.reduce((sum, s) => sum + s.running, 0);
    const desired = o.services.reduce((sum, s) => sum + s.desired, 0);
    $("#summary").textContent =
      `${count(o.nodes.length, "node")}, ${ready} ready · ${count(o.services.length, "service")}, ` +
      `${running}/${desired} tasks running · served by ${o.manager}`;
  }

  async function refresh() {
    let response;
    try {
      response = await fetch("/api/overview", { cache: "no-store" });
    } catch (err) {
      setLive(false, "unreachable");
      return;
    }
    if (response.status === 401) {
      location.assign("/login");
      return;
    }
    if (!response.ok) {
      setLive(false, `error ${response.status}`);
      return;
    }
    const o = await response.json();
    drawSummary(o);
    drawNodes(o.nodes);
    drawServices(o.services, o.nodes);
    drawFailures(o.failures);
    drawEvents(o.events);
    document.body.dataset.updated = String(Date.now());
  }

  function setLive(on, text) {
    const live = $("#live");
    live.classList.toggle("on", on);
    live.textContent = text;
  }

  // Events come in bursts (a service's tasks): one read for a burst.
  let pending = null;
  function soon() {
    if (pending) return;
    pending = setTimeout(() => { pending = null; refresh(); }, 250);
  }

  function listen() {
    const source = new EventSource("/api/events");
    source.onopen = () => { setLive(true, "live"); soon(); };
    source.addEventListener("swarm", soon);
    source.addEventListener("lagged", soon);
    // The browser reconnects by itself; the overview is read again once it has.
    source.onerror = () => setLive(false, "reconnecting");
  }

  refresh();
  listen();
  setInterval(refresh, 10000);
})();
