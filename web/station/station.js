// ncpflash station dashboard: renders /api/status, then follows /api/events (Server-Sent Events
// carrying the station's v2 event lines).  Control buttons POST with the token from the URL
// fragment (#token=...), as printed by the station at start.  Nothing is loaded from elsewhere.
(function () {
  "use strict";
  var state = { status: null, slots: {}, received: {}, token: null };
  var STATE_TEXT = { waiting: "WAITING", ready: "READY", running: "RUNNING", pass: "PASS", fail: "FAIL",
    stopped: "STOPPED", paused: "PAUSED" };

  function $(id) { return document.getElementById(id); }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }
  function fmtSecs(s) {
    if (s === undefined || s === null) return "";
    if (s < 60) return s.toFixed(1) + " s";
    return Math.floor(s / 60) + " min " + Math.floor(s % 60) + " s";
  }

  (function readToken() {
    var m = /(?:^|[#&])token=([0-9A-Za-z_-]+)/.exec(window.location.hash || "");
    if (m) {
      state.token = m[1];
      try { sessionStorage.setItem("ncpflash-token", m[1]); } catch (e) { /* private mode */ }
      history.replaceState(null, "", window.location.pathname);
    } else {
      try { state.token = sessionStorage.getItem("ncpflash-token"); } catch (e) { state.token = null; }
    }
  })();

  function control(path) {
    if (!state.token) return;
    var xhr = new XMLHttpRequest();
    xhr.open("POST", path);
    xhr.setRequestHeader("Authorization", "Bearer " + state.token);
    xhr.onload = function () {
      if (xhr.status !== 200) {
        var msg = xhr.status + "";
        try { msg = JSON.parse(xhr.responseText).error; } catch (e) { /* not JSON */ }
        showBanner("control refused: " + msg);
      }
    };
    xhr.send("");
  }

  function showBanner(text) {
    var b = $("banner");
    if (text) { b.textContent = text; b.hidden = false; } else { b.hidden = true; }
  }

  function button(label, cls, path) {
    var b = el("button", "ctl " + cls, label);
    b.type = "button";
    b.disabled = !state.token;
    b.addEventListener("click", function () { control(path); });
    return b;
  }

  function renderTile(v) {
    var t = el("article", "tile state-" + v.state);
    t.id = "slot-" + v.index;
    t.setAttribute("data-slot", v.index);
    t.setAttribute("data-state", v.state);
    var unit = v.unit || {};
    t.setAttribute("data-unit", unit.mac || unit.chip_id || "");
    if (unit.is_repeat) t.setAttribute("data-repeat", "1");
    var head = el("div", "head");
    head.appendChild(el("span", "slot", "Slot " + v.index));
    var port = el("span", "port", v.label || v.port);
    port.title = v.port;
    head.appendChild(port);
    t.appendChild(head);
    t.appendChild(el("div", "state", STATE_TEXT[v.state] || v.state));
    var u = el("div", "unit", unit.mac || unit.chip_id || (v.waiting_for === "trigger" ? "press Start unit" :
      (v.state === "waiting" ? "waiting for a unit" : "")));
    if (unit.is_repeat) u.appendChild(el("span", "badge", "repeat #" + (unit.unit_attempt || 2)));
    t.appendChild(u);
    var bar = el("div", "bar");
    var fill = el("div");
    var p = v.state === "running" ? (v.progress || 0) : ((v.state === "pass") ? 1 : 0);
    fill.style.width = Math.round(p * 100) + "%";
    bar.appendChild(fill);
    t.appendChild(bar);
    var meta = el("div", "meta");
    var stage = el("span", "stage", v.state === "running" ? (v.stage || "start") :
      (v.waiting_for === "removal" ? "remove the unit" : ""));
    var elapsed = el("span", "elapsed", fmtSecs(v.elapsed));
    meta.appendChild(stage);
    meta.appendChild(elapsed);
    t.appendChild(meta);
    t.appendChild(el("div", "err", v.last_error || ""));
    var bs = el("div", "buttons");
    bs.appendChild(button("Start", "start", "/api/slots/" + v.index + "/start"));
    bs.appendChild(button("Pause", "pause", "/api/slots/" + v.index + "/pause"));
    bs.appendChild(button("Stop", "stop", "/api/slots/" + v.index + "/stop"));
    if (v.trigger === "button") bs.appendChild(button("Start unit", "trigger", "/api/slots/" + v.index + "/trigger"));
    t.appendChild(bs);
    return t;
  }

  function putSlot(v) {
    state.slots[v.index] = v;
    state.received[v.index] = Date.now();
    var old = $("slot-" + v.index);
    var t = renderTile(v);
    if (old) old.parentNode.replaceChild(t, old); else $("tiles").appendChild(t);
  }

  function renderCounters(c) {
    if (!c) return;
    $("c-done").textContent = c.done;
    $("c-pass").textContent = c.pass;
    $("c-fail").textContent = c.fail;
    $("c-yield").textContent = (c.yield === undefined || c.yield === null) ? "–" : (c.yield * 100).toFixed(1) + " %";
    $("c-uph").textContent = (c.units_per_hour || 0).toFixed(1);
    $("c-repeats").textContent = c.repeats;
    $("c-attempts").textContent = c.attempts;
  }

  function renderFailures(list) {
    var body = $("failures");
    while (body.firstChild) body.removeChild(body.firstChild);
    if (!list || list.length === 0) {
      var tr = el("tr");
      var td = el("td", "none", "none");
      td.colSpan = 5;
      tr.appendChild(td);
      body.appendChild(tr);
      return;
    }
    list.forEach(function (f) {
      var tr = el("tr");
      tr.appendChild(el("td", null, (f.ended_at || "").replace("T", " ").replace(/\.\d+Z$/, "Z")));
      tr.appendChild(el("td", null, String(f.slot)));
      tr.appendChild(el("td", null, f.mac || f.chip_id || "(no unit)"));
      tr.appendChild(el("td", null, f.error_code || f.result || ""));
      tr.appendChild(el("td", null, f.message || ""));
      body.appendChild(tr);
    });
  }

  function renderStatus(s) {
    state.status = s;
    document.title = "ncpflash station " + s.station;
    $("station-name").textContent = s.station;
    $("locked").textContent = "operator " + (s.operator || "-") + " · job " + s.job_name + " · image set " +
      s.image_set_sha256.slice(0, 16) + " · station file " + s.station_file_sha256.slice(0, 12) +
      " · ncpflash " + s.version + " · locked until restart";
    $("locked").title = s.locked + "\n" + s.job_command;
    var tiles = $("tiles");
    while (tiles.firstChild) tiles.removeChild(tiles.firstChild);
    s.slots.forEach(putSlot);
    renderCounters(s.counters);
    renderFailures(s.failures);
    showBanner(s.halted ? "HALTED: " + s.halted : null);
  }

  function onEvent(e) {
    if (e.event === "status" || e.event === "station") { renderStatus(e.status); return; }
    if (e.event === "slot") { putSlot(e.slot); return; }
    if (e.event === "counters") { renderCounters(e.counters); renderFailures(e.failures); return; }
    if (e.event === "halted") { showBanner("HALTED: " + e.message); return; }
    // a device event of a running job: stage and progress of that slot's tile
    if (e.device && state.slots[e.device.index]) {
      var v = state.slots[e.device.index];
      if (v.state !== "running") return;
      if (e.event === "stage") v.stage = e.name;
      if (e.device.mac && v.unit && !v.unit.mac) { v.unit.mac = e.device.mac; putSlot(v); }
      var t = $("slot-" + v.index);
      if (!t) return;
      if (e.event === "stage") t.querySelector(".stage").textContent = e.name;
      var total = 0, sizes = {};
      if (state.status) state.status.regions.forEach(function (r) { total += r.size; sizes[r.name] = r.size; });
      if (v.completed === undefined) v.completed = (v.progress || 0) * total;
      if (e.event === "info" && e.region && (e.written || e.unchanged || e.resumed)) {
        v.completed += sizes[e.region] || e.written || 0;
        v.current = 0;
      }
      if (e.event === "progress" && e.stage === "write") v.current = e.done || 0;
      if (total > 0) {
        v.progress = Math.min(1, (v.completed + (v.current || 0)) / total);
        t.querySelector(".bar > div").style.width = Math.round(v.progress * 100) + "%";
      }
    }
  }

  function connect() {
    var es = new EventSource("/api/events" + (state.token ? "?token=" + state.token : ""));
    es.onopen = function () { $("conn").textContent = "live"; $("conn").setAttribute("data-conn", "live"); };
    es.onerror = function () { $("conn").textContent = "connection lost, retrying…"; $("conn").setAttribute("data-conn", "lost"); };
    es.onmessage = function (m) {
      var e;
      try { e = JSON.parse(m.data); } catch (err) { return; }
      onEvent(e);
    };
  }

  // elapsed time of running slots, between events
  setInterval(function () {
    Object.keys(state.slots).forEach(function (k) {
      var v = state.slots[k];
      if (v.state !== "running" || v.elapsed === undefined) return;
      var t = $("slot-" + k);
      if (t) t.querySelector(".elapsed").textContent = fmtSecs(v.elapsed + (Date.now() - state.received[k]) / 1000);
    });
  }, 1000);

  document.querySelectorAll(".all-controls button").forEach(function (b) {
    b.disabled = !state.token;
    b.addEventListener("click", function () { control("/api/" + b.getAttribute("data-action")); });
  });
  // the status the page was served with (first paint has the tiles); the event stream follows
  var initial = $("initial-status");
  if (initial) {
    try { renderStatus(JSON.parse(initial.textContent)); } catch (err) { /* the stream brings it */ }
  }
  $("token-note").textContent = state.token ? "control enabled" :
    "read-only: open the dashboard URL printed at the station's start (…/#token=…) to control it";
  connect();
})();
