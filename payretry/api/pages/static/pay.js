// The payment page updates itself: on each event of its payment (Server-Sent Events from
// <page>/events) it fetches the status section again and swaps it in. The form works without
// this script; nothing here is needed to pay.
(function () {
  "use strict";
  var root = document.getElementById("payment");
  if (!root || !window.fetch) { return; }
  var base = root.getAttribute("data-base");
  var busy = false, again = false, timer = null;

  function schedule() {
    var status = document.getElementById("status");
    var wait = status && parseInt(status.getAttribute("data-wait") || "0", 10);
    if (timer) { clearTimeout(timer); timer = null; }
    if (wait > 0) { timer = setTimeout(refresh, wait * 1000 + 250); }
  }

  function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    fetch(base + "/status", { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (html === null) { return; }
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("status");
        var current = document.getElementById("status");
        if (!fresh || !current) { return; }
        var focused = document.activeElement && document.activeElement.id;
        var flash = current.querySelector(".flash");
        if (flash && !fresh.querySelector(".flash")) {
          fresh.insertBefore(document.importNode(flash, true), fresh.firstChild);
        }
        current.replaceWith(document.importNode(fresh, true));
        if (focused) {
          var again_ = document.getElementById(focused);
          if (again_) { again_.focus(); }
        }
        root.setAttribute("data-updated", String(Date.now()));
        schedule();
      })
      .catch(function () { /* the next event tries again */ })
      .then(function () {
        busy = false;
        if (again) { again = false; refresh(); }
      });
  }

  schedule();
  if (window.EventSource) {
    var source = new EventSource(base + "/events");
    source.addEventListener("update", refresh);
    source.addEventListener("open", function () { root.setAttribute("data-live", "yes"); });
  }
})();
