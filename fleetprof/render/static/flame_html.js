// fleetprof offline HTML flame graph: canvas renderer over embedded flamebearer JSON.
// Click a frame to zoom, "Reset" / Escape to unzoom, type a regular expression in the
// search box (Ctrl-F focuses it) to highlight matches and see their share, hover for a
// tooltip. Roots are drawn at the bottom (a flame graph, as the SVG export), at the top when
// the page was rendered as an icicle graph. window.flamegraph exposes the state for tests.
(function () {
  "use strict";
  var DATA = JSON.parse(document.getElementById("fg-data").textContent);
  var fb = DATA.flamebearer, UNIT = DATA.fleetprof.unit, ICICLE = !!DATA.fleetprof.icicle;
  var names = fb.names, TOTAL = fb.numTicks;
  var ROW = 18, FONT = "12px Verdana, sans-serif";
  var canvas = document.getElementById("fg-canvas"), ctx = canvas.getContext("2d");
  var tip = document.getElementById("fg-tip"), matchedEl = document.getElementById("fg-matched");
  var searchBox = document.getElementById("fg-search"), resetBtn = document.getElementById("fg-reset");
  var crumb = document.getElementById("fg-zoomed");

  // absolute x per block: levels[d] = [x, total, self, name, ...]
  var L = fb.levels.map(function (lv) {
    var out = lv.slice(), prev = 0;
    for (var i = 0; i < out.length; i += 4) { out[i] += prev; prev = out[i] + out[i + 1]; }
    return out;
  });
  var zoom = { x: 0, w: TOTAL, d: 0, name: null }, re = null, matchedPct = 0;

  function hashColour(name) {
    var key = name.replace(/ \(.*\)$/, "").split("(")[0], k = key;
    ["::", ".", "/"].some(function (s) {
      var i = key.lastIndexOf(s);
      if (i > 0) { k = key.slice(0, i); return true; }
      return false;
    });
    var h = 0;
    for (var i = 0; i < k.length; i++) h = (h * 31 + k.charCodeAt(i)) >>> 0;
    var j = 0;
    for (i = 0; i < name.length; i++) j = (j * 17 + name.charCodeAt(i)) >>> 0;
    j %= 25;
    return "rgb(" + (205 + (h & 255) % 50) + "," + (80 + ((h >>> 8) & 255) % 130 + j) + "," + (35 + ((h >>> 16) & 255) % 45 + j) + ")";
  }
  var colours = names.map(function (n) { return n === "total" || n === "other" ? "rgb(200,200,200)" : hashColour(n); });

  // canvas y of depth d: the root row at the top (icicle) or at the bottom (flame graph)
  function rowY(d) { return (ICICLE ? d : L.length - 1 - d) * ROW; }

  function pxOf(x, w) {
    var W = canvas.clientWidth, s = W / zoom.w;
    var a = (x - zoom.x) * s, b = a + w * s;
    return [Math.max(a, 0), Math.min(b, W)];
  }

  function visible(d, x, w) {
    if (d < zoom.d) return x <= zoom.x && x + w >= zoom.x + zoom.w; // ancestors of the zoomed frame
    return x + w > zoom.x && x < zoom.x + zoom.w;
  }

  function draw() {
    var dpr = window.devicePixelRatio || 1, W = canvas.clientWidth, H = L.length * ROW;
    canvas.style.height = H + "px";
    canvas.width = W * dpr; canvas.height = H * dpr;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, W, H);
    ctx.font = FONT; ctx.textBaseline = "middle";
    var charW = ctx.measureText("m").width;
    for (var d = 0; d < L.length; d++) {
      var lv = L[d], y = rowY(d);
      for (var i = 0; i < lv.length; i += 4) {
        var x = lv[i], w = lv[i + 1];
        if (!visible(d, x, w)) continue;
        var p = pxOf(x, w), pw = p[1] - p[0];
        if (pw < 0.3) continue;
        var name = names[lv[i + 3]];
        ctx.globalAlpha = d < zoom.d ? 0.5 : 1;
        ctx.fillStyle = re && re.test(name) ? "rgb(230,0,230)" : colours[lv[i + 3]];
        ctx.fillRect(p[0], y, Math.max(pw - 0.5, 0.3), ROW - 1);
        var n = Math.floor((pw - 6) / charW);
        if (n >= 3) {
          ctx.fillStyle = "#000";
          ctx.fillText(name.length > n ? name.slice(0, n - 2) + ".." : name, p[0] + 3, y + ROW / 2);
        }
      }
    }
    ctx.globalAlpha = 1;
    resetBtn.disabled = zoom.d === 0 && zoom.w === TOTAL;
    crumb.textContent = zoom.name ? "Zoomed: " + zoom.name : "";
  }

  function hit(ev) {
    var r = canvas.getBoundingClientRect(), mx = ev.clientX - r.left, row = Math.floor((ev.clientY - r.top) / ROW);
    var d = ICICLE ? row : L.length - 1 - row;
    if (d < 0 || d >= L.length) return null;
    var lv = L[d], x = zoom.x + mx / canvas.clientWidth * zoom.w;
    for (var i = 0; i < lv.length; i += 4) {
      if (lv[i] <= x && x < lv[i] + lv[i + 1] && visible(d, lv[i], lv[i + 1])) {
        return { d: d, x: lv[i], w: lv[i + 1], self: lv[i + 2], name: names[lv[i + 3]] };
      }
    }
    return null;
  }

  function setZoom(f) {
    zoom = f ? { x: f.x, w: f.w, d: f.d, name: f.name } : { x: 0, w: TOTAL, d: 0, name: null };
    draw();
  }

  function computeMatched() {
    var iv = [];
    for (var d = 0; d < L.length; d++) {
      var lv = L[d];
      for (var i = 0; i < lv.length; i += 4) if (re.test(names[lv[i + 3]])) iv.push([lv[i], lv[i] + lv[i + 1]]);
    }
    iv.sort(function (a, b) { return a[0] - b[0] || b[1] - a[1]; });
    var covered = 0, end = -Infinity;
    iv.forEach(function (v) {
      if (v[0] >= end) { covered += v[1] - v[0]; end = v[1]; }
      else if (v[1] > end) { covered += v[1] - end; end = v[1]; }
    });
    return covered;
  }

  function search(term) {
    re = null;
    matchedEl.textContent = "";
    if (term) {
      try { re = new RegExp(term); } catch (e) { re = null; }
    }
    if (re) {
      var c = computeMatched();
      matchedPct = 100 * c / (TOTAL || 1);
      matchedEl.textContent = "Matched: " + matchedPct.toFixed(2) + "% (" + fmtValue(c, UNIT) + ")";
    } else {
      matchedPct = 0;
    }
    draw();
  }

  canvas.addEventListener("click", function (ev) { var f = hit(ev); if (f) setZoom(f); });
  canvas.addEventListener("mousemove", function (ev) {
    var f = hit(ev);
    if (!f) { tip.style.display = "none"; return; }
    tip.textContent = f.name + "\n" + fmtValue(f.w, UNIT) + " (" + (100 * f.w / (TOTAL || 1)).toFixed(2) +
      "%), self " + fmtValue(f.self, UNIT);
    tip.style.display = "block";
    tip.style.left = Math.min(ev.pageX + 12, window.innerWidth - 320) + "px";
    tip.style.top = ev.pageY + 14 + "px";
  });
  canvas.addEventListener("mouseleave", function () { tip.style.display = "none"; });
  resetBtn.addEventListener("click", function () { setZoom(null); });
  searchBox.addEventListener("input", function () { search(searchBox.value); });
  window.addEventListener("keydown", function (e) {
    if ((e.ctrlKey || e.metaKey) && (e.key === "f" || e.key === "F")) { e.preventDefault(); searchBox.focus(); }
    else if (e.key === "Escape") { if (zoom.name) setZoom(null); else { searchBox.value = ""; search(""); } }
  });
  window.addEventListener("resize", draw);

  window.flamegraph = {
    state: function () { return { zoom: zoom, matchedPct: re ? matchedPct : null, levels: L.length, icicle: ICICLE }; },
    // canvas-relative box of the first visible frame called `name` (for tests and tools)
    frameBox: function (name) {
      for (var d = 0; d < L.length; d++) {
        var lv = L[d];
        for (var i = 0; i < lv.length; i += 4) {
          if (names[lv[i + 3]] === name && visible(d, lv[i], lv[i + 1])) {
            var p = pxOf(lv[i], lv[i + 1]);
            return { x: p[0], y: rowY(d), width: p[1] - p[0], height: ROW - 1 };
          }
        }
      }
      return null;
    },
    search: search, zoom: setZoom
  };
  draw();
})();
