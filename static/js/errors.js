/* An htmx request that goes wrong says so where the person clicked: a 5xx, a refusal htmx
   does not swap (403, 429), a network failure, or a 422 that carries a drportal:error
   event (a write that met a lock; drportal.middleware.WriteConflictAnswers422). Without
   this, an editor stays in edit mode and looks as if nothing happened. The words come from
   <body data-msg-...> so they are translated with the page. */
(function () {
  "use strict";

  function words(name, status) {
    var text = document.body.dataset[name] || "";
    return text.replace("%(status)s", String(status));
  }

  function show(elt, text) {
    var anchor = (elt && elt.closest && elt.closest("form")) || elt || document.body;
    var box = anchor.querySelector(":scope > .htmx-error");
    if (!box) {
      box = document.createElement("p");
      box.className = "error htmx-error";
      box.setAttribute("role", "alert");
      anchor.appendChild(box);
    }
    box.textContent = "✖ " + text;
  }

  document.addEventListener("htmx:responseError", function (event) {
    var status = event.detail.xhr.status;
    show(event.detail.elt, words(status >= 500 ? "msgServerFailed" : "msgRefused", status));
  });
  document.addEventListener("htmx:sendError", function (event) {
    show(event.detail.elt, words("msgUnreachable", 0));
  });
  document.addEventListener("drportal:error", function (event) {
    show(event.target, String(event.detail.value));
  });
  // A new attempt clears the last message.
  document.addEventListener("htmx:beforeRequest", function (event) {
    var anchor = (event.detail.elt.closest && event.detail.elt.closest("form")) || event.detail.elt;
    var box = anchor.querySelector(":scope > .htmx-error");
    if (box) {
      box.remove();
    }
  });
})();
