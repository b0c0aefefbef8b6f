/* drportal board: the deadline countdown, the live-status line, <details> a person
   opened staying open when htmx swaps a part of the board, and a page of actions a
   person turned to staying turned. Small on purpose: the pages
   work without it, except that the clock then only moves when a part is redrawn. */
(function () {
  "use strict";

  function clock(seconds) {
    var total = Math.abs(Math.round(seconds));
    var h = Math.floor(total / 3600);
    var m = Math.floor((total % 3600) / 60);
    var s = total % 60;
    return h + ":" + String(m).padStart(2, "0") + ":" + String(s).padStart(2, "0");
  }

  function tick() {
    document.querySelectorAll(".countdown[data-seconds]").forEach(function (el) {
      if (!el.dataset.base) {
        el.dataset.base = String(Date.now());
      }
      var left = Number(el.dataset.seconds) - (Date.now() - Number(el.dataset.base)) / 1000;
      var template = left >= 0 ? el.dataset.left : el.dataset.over;
      el.textContent = (left >= 0 ? "" : "✖ ") + template.replace("%(time)s", clock(left));
      el.classList.toggle("bad", left < 0);
    });
  }
  setInterval(tick, 1000);

  var ICONS = { open: "●", error: "↻", closed: "■" };
  function liveStatus(kind) {
    var el = document.getElementById("live-status");
    if (!el || !el.dataset[kind]) {
      return;
    }
    el.dataset.kind = kind;
    el.textContent = ICONS[kind] + " " + el.dataset[kind];
  }
  var source = null; // the stream the board follows (the sse extension opens it)
  var ended = false; // it said the run has ended, and was closed
  var reopening = false; // closed here, to be opened afresh (not a lost connection)
  document.addEventListener("htmx:sseOpen", function (event) {
    source = event.detail && event.detail.source;
    reopening = false;
    liveStatus("open");
  });
  document.addEventListener("htmx:sseError", function () {
    if (reopening) {
      reopening = false; // the error that closed it here; any later one is the connection's
      return;
    }
    liveStatus("error");
  });
  document.addEventListener("htmx:sseClose", function (event) {
    if (event.detail && event.detail.type === "message") {
      ended = true;
      liveStatus("closed");
    }
  });

  // An operator's control (a POST: Retry, Skip, Pause, ...) answers with a part of the
  // board as it was when the answer was drawn, which the stream does not know of: an
  // element the stream sent meanwhile, and not since, would stay as the answer drew it.
  // So the stream is opened afresh once the answer is in (the extension's own reopening,
  // from a stream that erred: it opens the board's sse-connect again, without the page's
  // last_event_id, so the new stream starts from a snapshot and sends every part whole).
  // A refusal in the answer stays above the part through that redraw, as it would
  // until the part next changed. After the run's end the part is fetched again instead.
  var refusals = {}; // section id -> [the refusal, its place among the section's children]
  function answered(section) {
    var board = document.getElementById("board");
    var url = board && board.getAttribute("sse-connect");
    if (!url || !source) {
      return; // a board that polls: every part it fetches is whole
    }
    var refusal = section.querySelector(":scope > .error[role=alert]");
    if (refusal) {
      refusals[section.id] = [refusal, Array.prototype.indexOf.call(section.children, refusal)];
    }
    if (ended) {
      window.htmx.ajax("GET", url.replace(/events\/.*$/, "part/" + section.id.slice(4) + "/"), {
        target: "#" + section.id, swap: "innerHTML",
      });
      return;
    }
    var fresh = new URL(url, window.location.href);
    fresh.searchParams.delete("last_event_id");
    board.setAttribute("sse-connect", fresh.pathname + fresh.search);
    if (source.readyState !== EventSource.CLOSED) { // closed: the extension opens it again anyway
      reopening = true;
      source.close();
      source.dispatchEvent(new Event("error"));
    }
  }
  function keepRefusal(section) {
    var kept = refusals[section.id];
    delete refusals[section.id];
    if (kept && !section.querySelector(":scope > .error[role=alert]")) {
      section.insertBefore(kept[0], section.children[kept[1]] || null);
    }
  }

  // A <details> someone opened or closed by hand keeps that state across redraws.
  var touched = {};
  document.addEventListener("click", function (event) {
    var summary = event.target.closest && event.target.closest("details[id] > summary");
    if (summary) {
      var details = summary.parentElement;
      // the click toggles after this handler: record the state it is about to have
      touched[details.id] = !details.open;
    }
  });
  // A page of a step's actions someone turned to (the pager's links) stays on that page
  // when the live board redraws the actions with every list on its first page.
  var turned = {};
  document.addEventListener("htmx:afterRequest", function (event) {
    var elt = event.detail.elt;
    var config = event.detail.requestConfig;
    if (!elt || !elt.dataset || !elt.dataset.pager || !event.detail.successful || !config) {
      return;
    }
    if (/[?&]page=1(&|$)/.test(config.path)) {
      delete turned[elt.dataset.pager];
    } else {
      turned[elt.dataset.pager] = config.path;
    }
  });
  function returnToTurnedPages() {
    if (!window.htmx) {
      return;
    }
    Object.keys(turned).forEach(function (id) {
      if (document.getElementById(id)) {
        window.htmx.ajax("GET", turned[id], { target: "#" + id, swap: "outerHTML" });
      } else {
        delete turned[id];
      }
    });
  }

  document.addEventListener("htmx:afterSwap", function (event) {
    // a pushed part (the sse extension's swap) names no target: the event's is the element
    var target = event.detail.target || event.target;
    if (!target || !target.querySelectorAll) {
      return;
    }
    var config = event.detail.requestConfig;
    if (config && config.verb === "post" && /^run-/.test(target.id)) {
      answered(target);
    } else if (Object.prototype.hasOwnProperty.call(refusals, target.id)) {
      keepRefusal(target);
    }
    if (target.id === "run-actions") {
      returnToTurnedPages();
    }
    var swapped = Array.prototype.slice.call(target.querySelectorAll("details[id]"));
    if (target.matches && target.matches("details[id]")) {
      swapped.push(target); // a group the stream swapped by itself
    }
    swapped.forEach(function (details) {
      if (Object.prototype.hasOwnProperty.call(touched, details.id)) {
        details.open = touched[details.id];
      }
    });
  });

  // What the stream sends of the parts that changed only in places (html-oob: elements
  // swapped out of band by their id): the log's new lines go to its top, and it keeps as
  // many as it was drawn with; where the actions changed, a control's refusal above them
  // goes and the pages someone turned to are fetched again, as when the whole part is
  // redrawn (an action's row on a page not shown has nothing to swap here).
  var ACTIONS_CHANGED = /hx-swap-oob="true"[^>]* id="actions?-/;
  document.addEventListener("htmx:sseMessage", function (event) {
    if (!event.target || event.target.id !== "board-oob" || !event.detail) {
      return;
    }
    var log = document.getElementById("log-lines");
    var keep = log ? Number(log.dataset.lines) || 0 : 0;
    while (keep && log.children.length > keep) {
      log.removeChild(log.lastElementChild);
    }
    if (ACTIONS_CHANGED.test(event.detail.data || "")) {
      document.querySelectorAll("#run-actions > .error[role=alert]").forEach(function (error) {
        error.remove();
      });
      returnToTurnedPages();
    }
  });
})();
