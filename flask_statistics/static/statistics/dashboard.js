/* flask-statistics dashboard: the only script of our own. No eval, no inline code.
 *
 * - Hands each chart's tooltip settings (data-pygal-config on the <svg>) to
 *   pygal-tooltips, which reads them from window.pygal.config[uuid]. This file loads
 *   before pygal-tooltips, which initialises the charts already on the page.
 * - Initialises the charts htmx swaps in later (htmx:after:swap), and drops their
 *   native <title> tooltips, the fallback for browsers without JavaScript.
 * - Keeps an identical URL from being pushed twice (a date input applies the filter
 *   on "change", and Enter then submits the same filter again), so that every Back
 *   goes to a different filter.
 * - Shows a notice when a request fails, and hides it after the next good swap.
 * - Marks the panels a request will replace as busy (aria-busy, inert: dimmed and
 *   not clickable, see dashboard.css) from the moment it starts, including htmx's
 *   history restore after Back. They stay busy until their replacement arrives;
 *   if the request fails, they become usable again.
 * - Lets pygal-tooltips clear a tooltip under Trusted Types: it empties the tooltip's
 *   text with `innerHTML = ""`, a sink that takes no plain string, so those elements
 *   get an innerHTML setter that can only empty them.
 */
(function () {
  "use strict";

  var pygal = (window.pygal = window.pygal || {});
  pygal.config = pygal.config || {};
  var known = new WeakSet();

  function charts() {
    return document.querySelectorAll("svg.pygal-chart[data-pygal-config]");
  }

  var innerHTML = Object.getOwnPropertyDescriptor(Element.prototype, "innerHTML");

  function onlyEmptied(element) {
    Object.defineProperty(element, "innerHTML", {
      configurable: true,
      get: function () {
        return innerHTML.get.call(this);
      },
      set: function (value) {
        if (value !== "") {
          throw new TypeError("flask-statistics: a chart tooltip's text can only be emptied");
        }
        this.replaceChildren();
      },
    });
  }

  function register(svg) {
    svg.querySelectorAll("g.tooltip g.text").forEach(onlyEmptied);
    var settings = {};
    try {
      settings = JSON.parse(svg.getAttribute("data-pygal-config")) || {};
    } catch (error) {
      settings = {};
    }
    pygal.config[svg.id.replace(/^chart-/, "")] = settings;
  }

  function dropNativeTips(svg) {
    svg.querySelectorAll("title.fs-native-tip").forEach(function (tip) {
      tip.remove();
    });
  }

  // Charts in the page as loaded: pygal-tooltips initialises them right after us.
  charts().forEach(function (svg) {
    known.add(svg);
    register(svg);
  });

  document.addEventListener("DOMContentLoaded", function () {
    if (typeof pygal.init === "function") {
      charts().forEach(dropNativeTips);
    }
  });

  document.addEventListener("htmx:after:swap", function () {
    var notice = document.getElementById("connection-error");
    if (notice) {
      notice.hidden = true;
    }
    charts().forEach(function (svg) {
      if (known.has(svg)) {
        return;
      }
      known.add(svg);
      register(svg);
      if (typeof pygal.init === "function") {
        pygal.init(svg);
        dropNativeTips(svg);
      }
    });
  });

  var inFlight = new WeakMap(); // panel -> requests under way that will replace it
  var marked = new WeakMap(); // request context -> the panels it marked

  function panelsIn(target) {
    if (!target || typeof target.querySelectorAll !== "function") {
      return [];
    }
    if (target.matches(".panel")) {
      return [target];
    }
    return Array.prototype.slice.call(target.querySelectorAll(".panel"));
  }

  function setBusy(panel, busy) {
    if (busy) {
      panel.setAttribute("aria-busy", "true");
    } else {
      panel.removeAttribute("aria-busy");
    }
    panel.inert = busy;
  }

  document.addEventListener("htmx:before:request", function (event) {
    var ctx = event.detail && event.detail.ctx;
    if (!ctx) {
      return;
    }
    var panels = panelsIn(ctx.target);
    marked.set(ctx, panels);
    panels.forEach(function (panel) {
      inFlight.set(panel, (inFlight.get(panel) || 0) + 1);
      setBusy(panel, true);
    });
  });

  document.addEventListener("htmx:finally:request", function (event) {
    var ctx = event.detail && event.detail.ctx;
    var panels = (ctx && marked.get(ctx)) || [];
    panels.forEach(function (panel) {
      var left = Math.max((inFlight.get(panel) || 1) - 1, 0);
      inFlight.set(panel, left);
      // After a swap, a panel still on the page was kept for a slot that is loading
      // its replacement; after a failure, nothing will replace it.
      if (left === 0 && ctx.status !== "swapped" && panel.isConnected) {
        setBusy(panel, false);
      }
    });
  });

  // htmx 4 pushes after every request with hx-push-url; the response is still
  // swapped (fresh data), only the duplicate history entry is skipped.
  document.addEventListener("htmx:before:history:update", function (event) {
    var action = event.detail && event.detail.history;
    if (action && action.type === "push" && new URL(action.path, location.href).href === location.href) {
      event.preventDefault();
    }
  });

  document.addEventListener("htmx:error", function () {
    var notice = document.getElementById("connection-error");
    if (notice) {
      notice.hidden = false;
    }
  });
})();
