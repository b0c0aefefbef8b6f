/* What would otherwise be inline (the Content-Security-Policy allows no inline script or
   style, drportal/settings.py): bar segments get their width from data-width (a percentage
   the server computed), and buttons with data-print print the page. Runs on the page and on
   every part htmx swaps in. */
(function () {
  "use strict";

  function apply(root) {
    root.querySelectorAll("[data-width]").forEach(function (el) {
      var percent = Number(el.dataset.width);
      if (isFinite(percent)) {
        el.style.width = Math.max(0, Math.min(percent, 100)) + "%";
      }
    });
    root.querySelectorAll("button[data-print]").forEach(function (button) {
      if (!button.dataset.printReady) {
        button.dataset.printReady = "1";
        button.addEventListener("click", function () { window.print(); });
      }
    });
  }

  document.addEventListener("DOMContentLoaded", function () { apply(document); });
  document.addEventListener("htmx:load", function (event) { apply(event.target); });
})();
