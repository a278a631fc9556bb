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
