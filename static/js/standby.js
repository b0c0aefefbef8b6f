// A read-only portal (a standby, or a portal that is behind; drportal/twosite.py): every
// control that would change something is disabled and says why. The server refuses such
// a write anyway (drportal.middleware.StandbyGuard, a 503); this only keeps people from
// trying. Log in/out, the language switch and the take-over stay usable.
(function () {
  "use strict";
  var me = document.currentScript;
  var reason = me.dataset.reason;
  var open = me.dataset.open.split(" ");
  var WRITES = 'form[method="post" i] button, form[method="post" i] input, form[method="post" i] select, ' +
    'form[method="post" i] textarea, [hx-post], [hx-put], [hx-patch], [hx-delete]';

  function stillOpen(el) {
    if (el.closest(".topbar")) return true; // log out, language
    var form = el.closest("form");
    var target = el.getAttribute("hx-post") || (form && form.getAttribute("action")) || window.location.pathname;
    var path = new URL(target, window.location.href).pathname;
    return open.some(function (prefix) { return path.indexOf(prefix) === 0; });
  }

  function lock(root) {
    var noted = new Set();
    root.querySelectorAll(WRITES).forEach(function (el) {
      if (el.type === "hidden" || stillOpen(el)) return;
      el.disabled = true;
      el.setAttribute("aria-disabled", "true");
      el.title = reason;
      el.classList.add("standby-locked");
      var form = el.closest("form");
      if (form && !noted.has(form) && !form.querySelector(".site-readonly-note")) {
        noted.add(form);
        var note = document.createElement("p");
        note.className = "site-readonly-note";
        note.textContent = "\u26d4 " + reason.charAt(0).toUpperCase() + reason.slice(1) + ".";
        form.appendChild(note);
      }
    });
  }

  lock(document);
  document.addEventListener("htmx:load", function (event) { lock(event.target); });
})();
