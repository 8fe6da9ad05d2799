// fleetprof interactive SVG flame graph: click to zoom, reset, search (Ctrl-F), details.
// Frames are <g data-x data-w data-d> (x offset, width in ticks, depth) holding a <title>
// ("name\nvalue (pct%)"), a <rect> and a <text>. Configuration comes from the root
// element's data-* attributes (total, unit, xpad, fontw).
(function () {
  "use strict";
  var svg = document.documentElement;
  var cfg = svg.dataset;
  var TOTAL = +cfg.total, UNIT = cfg.unit || "", XPAD = +cfg.xpad, FONTW = +cfg.fontw;
  var WIDTH = +svg.getAttribute("width");
  var SPAN = WIDTH - 2 * XPAD;
  var frames = [], X = [], W = [], D = [], NAMES = [], FILLS = [];
  var zoomed = -1, matchRe = null;
  var details, matchedEl, unzoomEl, searchEl;

  function fmtPct(v) { return (100 * v / (TOTAL || 1)).toFixed(2) + "%"; }

  function label(i, px) {
    var n = Math.floor((px - 6) / FONTW), s = NAMES[i];
    if (n < 3) return "";
    return s.length > n ? s.slice(0, n - 2) + ".." : s;
  }

  function place(i, zx, zw) {
    var g = frames[i], r = g.rect, t = g.text;
    var scale = SPAN / zw;
    var x = XPAD + (X[i] - zx) * scale, w = W[i] * scale;
    if (x < XPAD) { w -= XPAD - x; x = XPAD; }
    if (x + w > WIDTH - XPAD) w = WIDTH - XPAD - x;
    r.setAttribute("x", x.toFixed(2));
    r.setAttribute("width", Math.max(w - 0.5, 0.1).toFixed(2));
    t.setAttribute("x", (x + 3).toFixed(2));
    t.textContent = label(i, w);
  }

  function zoom(i) {
    var zx = X[i], zw = W[i], zd = D[i];
    zoomed = i;
    for (var j = 0; j < frames.length; j++) {
      var g = frames[j];
      var outside = X[j] + W[j] <= zx || X[j] >= zx + zw;
      if (outside || (D[j] < zd && !(X[j] <= zx && X[j] + W[j] >= zx + zw))) {
        g.style.display = "none";
        continue;
      }
      g.style.display = "";
      g.classList.toggle("parent", D[j] < zd);
      place(j, zx, zw);
    }
    unzoomEl.classList.remove("hide");
    if (matchRe) showMatched();
  }

  function unzoom() {
    zoomed = -1;
    for (var j = 0; j < frames.length; j++) {
      frames[j].style.display = "";
      frames[j].classList.remove("parent");
      place(j, 0, TOTAL);
    }
    unzoomEl.classList.add("hide");
    if (matchRe) showMatched();
  }

  function showMatched() {
    // union of matched intervals, nested matches counted once
    var iv = [];
    for (var j = 0; j < frames.length; j++) if (frames[j].matched) iv.push([X[j], X[j] + W[j]]);
    iv.sort(function (a, b) { return a[0] - b[0] || b[1] - a[1]; });
    var covered = 0, end = -Infinity;
    for (var k = 0; k < iv.length; k++) {
      if (iv[k][0] >= end) { covered += iv[k][1] - iv[k][0]; end = iv[k][1]; }
      else if (iv[k][1] > end) { covered += iv[k][1] - end; end = iv[k][1]; }
    }
    matchedEl.textContent = "Matched: " + fmtPct(covered) + (UNIT === "share" ? "" : " (" + fmtValue(covered, UNIT) + ")");
    matchedEl.classList.remove("hide");
  }

  function search(term) {
    resetSearch();
    if (!term) return;
    try { matchRe = new RegExp(term); } catch (e) { matchRe = null; return; }
    for (var j = 0; j < frames.length; j++) {
      var m = matchRe.test(NAMES[j]);
      frames[j].matched = m;
      if (m) frames[j].rect.setAttribute("fill", "rgb(230,0,230)");
    }
    searchEl.textContent = "Reset Search";
    showMatched();
  }

  function resetSearch() {
    matchRe = null;
    for (var j = 0; j < frames.length; j++) {
      if (frames[j].matched) frames[j].rect.setAttribute("fill", FILLS[j]);
      frames[j].matched = false;
    }
    matchedEl.classList.add("hide");
    searchEl.textContent = "Search";
  }

  function askSearch() {
    if (matchRe) { resetSearch(); return; }
    var term = prompt("Search frames (regular expression):", "");
    if (term) search(term);
  }

  function frameOf(el) {
    while (el && el !== svg) {
      if (el.fgIndex !== undefined) return el;
      el = el.parentNode;
    }
    return null;
  }

  function init() {
    details = document.getElementById("details");
    matchedEl = document.getElementById("matched");
    unzoomEl = document.getElementById("unzoom");
    searchEl = document.getElementById("search");
    var gs = document.getElementById("frames").children;
    for (var i = 0; i < gs.length; i++) {
      var g = gs[i];
      g.fgIndex = i;
      g.rect = g.getElementsByTagName("rect")[0];
      g.text = g.getElementsByTagName("text")[0];
      frames.push(g);
      X.push(+g.dataset.x); W.push(+g.dataset.w); D.push(+g.dataset.d);
      var title = g.getElementsByTagName("title")[0].textContent;
      NAMES.push(title.slice(0, title.indexOf("\n")));
      FILLS.push(g.rect.getAttribute("fill"));
    }
    var root = document.getElementById("frames");
    root.addEventListener("click", function (e) {
      var g = frameOf(e.target);
      if (g) zoom(g.fgIndex);
    });
    root.addEventListener("mouseover", function (e) {
      var g = frameOf(e.target);
      if (g) details.textContent = g.getElementsByTagName("title")[0].textContent.replace("\n", " \u2014 ");
    });
    root.addEventListener("mouseout", function () { details.textContent = " "; });
    unzoomEl.addEventListener("click", unzoom);
    searchEl.addEventListener("click", askSearch);
    window.addEventListener("keydown", function (e) {
      if ((e.ctrlKey || e.metaKey) && (e.key === "f" || e.key === "F") || e.key === "F3") {
        e.preventDefault();
        askSearch();
      } else if (e.key === "Escape") {
        if (zoomed >= 0) unzoom(); else resetSearch();
      }
    });
    window.flamegraph = {
      zoom: zoom, unzoom: unzoom, search: search, resetSearch: resetSearch,
      zoomed: function () { return zoomed; }
    };
  }

  init();
})();
