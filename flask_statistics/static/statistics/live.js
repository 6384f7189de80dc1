/* flask-statistics live view: pauses the panel's polling while the tab is hidden.
 *
 * The panel (#live-panel) polls itself with hx-trigger="every 10s". A trigger filter
 * such as [document.visibilityState === 'visible'] would need eval, which the
 * dashboard's CSP forbids, so the check lives here: a poll that fires while the tab
 * is hidden is cancelled in htmx:before:request, and when the tab becomes visible
 * again the panel gets a "live-refresh" event (its second trigger) to catch up at
 * once. Without JavaScript the page has a plain "Refresh now" link instead.
 */
(function () {
  "use strict";

  function panel() {
    return document.getElementById("live-panel");
  }

  function showState() {
    var status = document.getElementById("live-status");
    if (!status) {
      return;
    }
    var seconds = status.getAttribute("data-refresh-seconds") || "10";
    status.textContent = document.hidden
      ? "Paused while this tab is hidden"
      : "Updates every " + seconds + " s";
    status.setAttribute("data-state", document.hidden ? "paused" : "polling");
    status.hidden = false;
  }

  document.addEventListener("htmx:before:request", function (event) {
    var source = event.target;
    if (document.hidden && source instanceof Element && source.id === "live-panel") {
      event.preventDefault();
    }
  });

  document.addEventListener("visibilitychange", function () {
    showState();
    var element = panel();
    if (!document.hidden && element) {
      element.dispatchEvent(new CustomEvent("live-refresh"));
    }
  });

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", showState);
  } else {
    showState();
  }
})();
