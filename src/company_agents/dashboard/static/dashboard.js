// The refresh fallback (off / 5 / 10 / 30 s): every live region re-fetches itself on a timer, besides
// the SSE stream, paused while the tab is hidden; the choice is kept in localStorage.
(function () {
  "use strict";
  var KEY = "company-agents.refresh";
  var timer = null;

  function tick() {
    if (document.hidden || !window.htmx) return;
    document.querySelectorAll("[data-live]").forEach(function (el) { window.htmx.trigger(el, "refresh"); });
  }

  function apply(seconds) {
    if (timer !== null) { clearInterval(timer); timer = null; }
    if (seconds > 0) timer = setInterval(tick, seconds * 1000);
  }

  document.addEventListener("DOMContentLoaded", function () {
    var select = document.getElementById("refresh");
    if (!select) return;
    var saved = localStorage.getItem(KEY) || "0";
    if (select.querySelector('option[value="' + saved + '"]')) select.value = saved;
    apply(parseInt(select.value, 10) || 0);
    select.addEventListener("change", function () {
      localStorage.setItem(KEY, select.value);
      apply(parseInt(select.value, 10) || 0);
    });
    // Back from a hidden tab: catch up at once rather than at the next tick.
    document.addEventListener("visibilitychange", function () { if (!document.hidden && timer !== null) tick(); });
  });
})();

// Inbox cards count down to their expiry: every <time data-countdown> shows "in 4m 12s", then
// "expired"; cards swapped in by the live stream count from the swap.
(function () {
  "use strict";

  function left(ms) {
    if (ms <= 0) return "expired";
    var s = Math.floor(ms / 1000), d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24;
    var m = Math.floor(s / 60) % 60;
    if (d > 0) return "in " + d + "d " + h + "h";
    if (h > 0) return "in " + h + "h " + m + "m";
    return "in " + m + "m " + (s % 60) + "s";
  }

  function tick() {
    var now = Date.now();
    document.querySelectorAll("time[data-countdown]").forEach(function (el) {
      var at = Date.parse(el.getAttribute("datetime"));
      if (!isNaN(at)) el.textContent = left(at - now);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    tick();
    setInterval(tick, 1000);
    document.body.addEventListener("htmx:afterSwap", tick);  // a new card counts from its first frame
  });
})();
