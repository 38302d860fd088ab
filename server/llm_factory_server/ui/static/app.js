/* llm-factory status page. Plain JavaScript, no build step.
 *
 * Reads /v1/providers/status every 2 s, /ui/api/timeseries every sampling interval (only the new
 * points), /ui/api/usage every 30 s. When the gateway has client keys, a 401 shows a form; the key
 * is kept in sessionStorage (this tab only) and sent as "Authorization: Bearer". Every value from
 * the gateway is written with textContent, never as HTML (reasons quote upstream error messages).
 */
(function () {
  "use strict";

  var KEY_STORE = "llm-factory-gateway-key";
  var STATUS_EVERY_MS = 2000;
  var USAGE_EVERY_MS = 30000;
  var COLOURS = ["#0969da", "#bf3989", "#1a7f37", "#9a6700", "#8250df", "#cf222e", "#1b7c83", "#57606a"];
  var DASHES = [[], [8, 4], [2, 3], [10, 3, 2, 3]];

  var $ = function (id) { return document.getElementById(id); };
  var state = {
    needKey: false,
    timers: [],
    series: null,      // {interval, window, t: [], deployments: [{name, requests: [], ...}]}
    charts: {},        // id -> {plot, names}
    usageCharts: {},
  };

  // -- fetching -----------------------------------------------------------------------------

  function storedKey() {
    try { return window.sessionStorage.getItem(KEY_STORE); } catch (e) { return null; }
  }

  function getJSON(path) {
    var headers = { "Accept": "application/json" };
    var key = storedKey();
    if (key) { headers["Authorization"] = "Bearer " + key; }
    // Relative to /ui: works under a proxy's path prefix. No cookies: the key is the only credential.
    return fetch(path, { headers: headers, credentials: "omit", cache: "no-store" }).then(function (r) {
      if (r.status === 401) {
        askForKey(key ? "That key was not accepted." : "");
        throw new Error("unauthorized");
      }
      return r.json().then(function (body) {
        if (!r.ok) {
          var msg = body && body.error && body.error.message ? body.error.message : "HTTP " + r.status;
          throw new Error(msg);
        }
        return body;
      });
    });
  }

  function askForKey(message) {
    if (!state.needKey) {
      state.needKey = true;
      stopPolling();
    }
    $("auth").hidden = false;
    $("deployments").hidden = true;
    $("charts").hidden = true;
    $("usage").hidden = true;
    $("forget").hidden = !storedKey();
    $("auth-error").textContent = message || "";
    setUpdated("Waiting for a client key.", false);
  }

  function setUpdated(text, isError) {
    var el = $("updated");
    el.textContent = text;
    el.className = isError ? "error" : "";
  }

  // -- the table ----------------------------------------------------------------------------

  function cell(row, text, cls) {
    var td = document.createElement("td");
    if (cls) { td.className = cls; }
    if (text !== null && text !== undefined) { td.textContent = text; }
    row.appendChild(td);
    return td;
  }

  function fmtTime(seconds) {
    var d = new Date(seconds * 1000);
    return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  }

  function fmtIn(seconds) {
    var left = Math.round(seconds - Date.now() / 1000);
    if (left <= 0) { return "ended"; }
    if (left < 120) { return "in " + left + " s"; }
    if (left < 7200) { return "in " + Math.round(left / 60) + " min"; }
    return "in " + Math.round(left / 3600) + " h";
  }

  function fmtInt(n) { return Number(n).toLocaleString(); }

  function renderStatus(body) {
    var rows = $("status-rows");
    var list = body.data || [];
    var frag = document.createDocumentFragment();
    var counts = { healthy: 0, cooldown: 0, disabled: 0 };
    list.forEach(function (s) {
      counts[s.state] = (counts[s.state] || 0) + 1;
      var tr = document.createElement("tr");
      tr.className = "state-" + s.state;
      tr.setAttribute("data-deployment", s.name);
      var th = document.createElement("th");
      th.scope = "row";
      th.className = "name";
      th.textContent = s.name;
      tr.appendChild(th);
      cell(tr, s.model_name, "model");
      cell(tr, s.provider);
      var badge = document.createElement("span");
      badge.className = "badge " + s.state;
      badge.textContent = s.state;
      cell(tr, null, "state").appendChild(badge);
      var until = cell(tr, null, "until");
      if (s.until !== null && s.until !== undefined && s.state !== "healthy") {
        var time = document.createElement("time");
        time.dateTime = new Date(s.until * 1000).toISOString();
        time.setAttribute("data-until", String(s.until));
        [fmtTime(s.until), "\u00a0(" + fmtIn(s.until) + ")"].forEach(function (part) {
          var span = document.createElement("span");
          span.textContent = part;
          time.appendChild(span);
        });
        until.appendChild(time);
      } else {
        until.textContent = "\u2014";
      }
      var reason = cell(tr, s.state === "healthy" ? "\u2014" : (s.reason || "\u2014"), "reason");
      if (s.last_error && s.last_error !== s.reason) {
        var detail = document.createElement("span");
        detail.className = "detail";
        detail.textContent = "last error: " + s.last_error;
        reason.appendChild(detail);
      }
      cell(tr, fmtInt(s.in_flight), "num");
      cell(tr, fmtInt(s.successes), "num");
      cell(tr, fmtInt(s.failures), "num");
      var total = s.successes + s.failures;
      cell(tr, total ? (100 * s.failures / total).toFixed(1) + " %" : "\u2014", "num");
      cell(tr, s.avg_latency_ms === null || s.avg_latency_ms === undefined ? "\u2014" : Math.round(s.avg_latency_ms) + " ms", "num");
      frag.appendChild(tr);
    });
    rows.replaceChildren(frag);
    var parts = [list.length + (list.length === 1 ? " deployment" : " deployments")];
    ["healthy", "cooldown", "disabled"].forEach(function (k) { if (counts[k]) { parts.push(counts[k] + " " + k); } });
    $("summary").textContent = parts.join(" \u00b7 ");
    $("message").textContent = body.message || "";
    setUpdated("Updated " + new Date().toLocaleTimeString(), false);
  }

  // -- charts -------------------------------------------------------------------------------

  function chartWidth(el) {
    return Math.max(320, Math.min(el.parentNode.clientWidth || 900, 1400) - 8);
  }

  function seriesOpts(label, i) {
    return {
      label: label,
      stroke: COLOURS[i % COLOURS.length],
      dash: DASHES[Math.floor(i / COLOURS.length) % DASHES.length],
      width: 2,
      spanGaps: false,  // no point (a deployment not yet there): a gap, not a line
    };
  }

  // At least the last 5 minutes, at most the window: one early point is not stretched over years.
  function xRange(windowSeconds) {
    return function (u, min, max) {
      if (min === null || max === null) { var now = Date.now() / 1000; return [now - 300, now]; }
      var lo = Math.max(min, max - windowSeconds);
      return [Math.min(lo, max - 300), max];
    };
  }

  var COUNT_STEPS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000, 1e6, 1e7];

  function drawChart(store, id, names, t, columns, unit, opt) {
    var el = $(id);
    var data = [t].concat(columns);
    var known = store[id];
    if (known && known.names.join("\n") === names.join("\n")) {
      known.plot.setData(data);
      return;
    }
    if (known) { known.plot.destroy(); }
    if (typeof window.uPlot !== "function") { return; }  // library failed to load: the table still works
    var opts = {
      width: chartWidth(el),
      height: 220,
      scales: { x: { time: true, range: xRange(opt && opt.window ? opt.window : 3600) } },
      series: [{}].concat(names.map(seriesOpts)),
      axes: [{}, opt && opt.counts ? { label: unit, size: 60, incrs: COUNT_STEPS } : { label: unit, size: 60 }],
      legend: { live: true },
    };
    store[id] = { plot: new window.uPlot(opts, data, el), names: names };
  }

  function applySeries(body, full) {
    if (full || !state.series) {
      state.series = body;
    } else {
      var s = state.series;
      var names = s.deployments.map(function (d) { return d.name; }).join("\n");
      if (names !== body.deployments.map(function (d) { return d.name; }).join("\n")) {
        return false;  // the set of deployments changed: fetch everything again
      }
      s.t = s.t.concat(body.t);
      s.deployments.forEach(function (d, i) {
        ["requests", "errors", "latency_ms", "in_flight", "state"].forEach(function (k) {
          d[k] = d[k].concat(body.deployments[i][k]);
        });
      });
      var keep = Math.floor(s.window / s.interval);
      var drop = s.t.length - keep;
      if (drop > 0) {
        s.t = s.t.slice(drop);
        s.deployments.forEach(function (d) {
          ["requests", "errors", "latency_ms", "in_flight", "state"].forEach(function (k) { d[k] = d[k].slice(drop); });
        });
      }
    }
    return true;
  }

  function renderCharts() {
    var s = state.series;
    var names = s.deployments.map(function (d) { return d.name; });
    var pick = function (k) { return s.deployments.map(function (d) { return d[k]; }); };
    var counts = { counts: true, window: s.window };
    drawChart(state.charts, "chart-requests", names, s.t, pick("requests"), "requests", counts);
    drawChart(state.charts, "chart-errors", names, s.t, pick("errors"), "errors", counts);
    drawChart(state.charts, "chart-latency", names, s.t, pick("latency_ms"), "ms", { window: s.window });
    var minutes = Math.round(s.window / 60);
    $("charts-note").textContent = s.message ? s.message : s.t.length
      ? "One point per " + s.interval + " s, last " + minutes + " min (" + s.t.length + " points so far)."
      : "Collecting: the first point appears " + s.interval + " s after the gateway starts.";
  }

  function loadSeries(full) {
    var last = state.series && state.series.t.length ? state.series.t[state.series.t.length - 1] : null;
    var path = "ui/api/timeseries" + (!full && last !== null ? "?since=" + encodeURIComponent(last) : "");
    return getJSON(path).then(function (body) {
      if (!applySeries(body, full || last === null)) { return loadSeries(true); }
      renderCharts();
    });
  }

  // -- usage and cost -----------------------------------------------------------------------

  function sum(values) {
    var total = 0;
    var any = false;
    values.forEach(function (v) { if (v !== null && v !== undefined) { total += v; any = true; } });
    return any ? total : null;
  }

  function renderUsage(body) {
    if (!body.enabled) {
      $("usage").hidden = true;
      return;
    }
    $("usage").hidden = false;
    var money = function (v) {
      return v === null ? "\u2014" : v.toLocaleString(undefined, { style: "currency", currency: body.currency || "USD", maximumFractionDigits: 4 });
    };
    var frag = document.createDocumentFragment();
    body.series.forEach(function (s) {
      var tr = document.createElement("tr");
      var th = document.createElement("th");
      th.scope = "row";
      th.textContent = s.key;
      tr.appendChild(th);
      cell(tr, s.model);
      [s.requests, s.prompt_tokens, s.completion_tokens].forEach(function (col) {
        var v = sum(col);
        cell(tr, v === null ? "\u2014" : fmtInt(v), "num");
      });
      cell(tr, money(sum(s.cost)), "num");
      frag.appendChild(tr);
    });
    $("usage-rows").replaceChildren(frag);
    var names = body.series.map(function (s) { return s.key + " / " + s.model; });
    $("usage-cost-caption").textContent = "Cost per interval (" + (body.currency || "USD") + "), by key and model";
    drawChart(state.usageCharts, "chart-cost", names, body.t, body.series.map(function (s) { return s.cost; }), body.currency || "USD", { window: body.t.length ? body.t[body.t.length - 1] - body.t[0] + body.interval : 3600 });
    drawChart(state.usageCharts, "chart-tokens", names, body.t, body.series.map(function (s) {
      return s.prompt_tokens.map(function (p, i) {
        var c = s.completion_tokens[i];
        return p === null && c === null ? null : (p || 0) + (c || 0);
      });
    }), "tokens", { counts: true, window: body.t.length ? body.t[body.t.length - 1] - body.t[0] + body.interval : 3600 });
  }

  // -- polling ------------------------------------------------------------------------------

  function failed(err) {
    if (err && err.message === "unauthorized") { return; }
    setUpdated("Could not reach the gateway (" + (err && err.message ? err.message : err) + "); retrying.", true);
  }

  function every(ms, fn) {
    fn();
    state.timers.push(window.setInterval(fn, ms));
  }

  function stopPolling() {
    state.timers.forEach(window.clearInterval);
    state.timers = [];
  }

  function startPolling() {
    stopPolling();
    state.needKey = false;
    $("auth").hidden = true;
    $("deployments").hidden = false;
    $("charts").hidden = false;
    $("forget").hidden = !storedKey();
    every(STATUS_EVERY_MS, function () { getJSON("v1/providers/status").then(renderStatus).catch(failed); });
    loadSeries(true).then(function () {
      if (state.needKey) { return; }
      var ms = Math.max(1000, state.series.interval * 1000);
      state.timers.push(window.setInterval(function () { loadSeries(false).catch(failed); }, ms));
    }).catch(failed);
    every(USAGE_EVERY_MS, function () { getJSON("ui/api/usage").then(renderUsage).catch(failed); });
  }

  function init() {
    $("auth-form").addEventListener("submit", function (ev) {
      ev.preventDefault();
      var key = $("key").value.trim();
      if (!/^[\x21-\x7e]+$/.test(key)) {
        $("auth-error").textContent = "A client key is printable ASCII without spaces.";
        return;
      }
      try { window.sessionStorage.setItem(KEY_STORE, key); } catch (e) { /* private mode: nothing kept */ }
      $("key").value = "";
      state.series = null;
      startPolling();
    });
    $("forget").addEventListener("click", function () {
      try { window.sessionStorage.removeItem(KEY_STORE); } catch (e) { /* nothing stored */ }
      window.location.reload();
    });
    window.addEventListener("resize", function () {
      [state.charts, state.usageCharts].forEach(function (store) {
        Object.keys(store).forEach(function (id) {
          store[id].plot.setSize({ width: chartWidth($(id)), height: 220 });
        });
      });
    });
    startPolling();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
