/* flask-statistics: the dashboard's Trusted Types policy. No eval, no inline code.
 *
 * Under `require-trusted-types-for 'script'` a string given to an HTML parser is
 * refused unless a policy made it TrustedHTML. htmx parses every response with
 * Document.parseHTMLUnsafe after passing it to its `createHTML` hook, which lets
 * any string through unless an extension installs a policy (initSecurity).
 *
 * The policy "flask-statistics" admits only the HTML of a response that htmx
 * received from one of the dashboard's own endpoints: same origin, under the
 * dashboard's URL (data-dashboard on this script's tag), served as text/html. Such a
 * response is noted when htmx has read it (htmx:after:request) and forgotten when
 * its request ends (htmx:finally:request). Anything else, and every script, is
 * refused; htmx then reports an htmx:error and swaps nothing.
 *
 * Loaded right after htmx and before htmx initialises (both are deferred), so the
 * policy is in place before the first request.
 */
(function () {
  "use strict";

  var NAME = "flask-statistics";
  var script = document.currentScript;
  if (!window.trustedTypes || !window.htmx || !script) {
    // Without Trusted Types, htmx's own pass-through hook is all there is to have.
    return;
  }

  var dashboard = new URL(script.getAttribute("data-dashboard") || "/", location.href);
  // What htmx does to a response before parsing it (htmx 4.0.1, #makeFragment):
  // <hx-*> tags become templates, the <head> is parsed on its own, and anything not
  // a whole document is parsed inside a <template>.
  var HX_OPEN = /<hx-([a-z]+)(\s+|>)/gi;
  var HX_CLOSE = /<\/hx-[a-z]+>/gi;
  var HEAD = /<head(\s[^>]*)?>[\s\S]*?<\/head>/i;
  var pending = new Map(); // request context -> the strings htmx may parse for it
  // A request whose element left the page ends without an event reaching us.
  var MAX_PENDING = 32;

  function fromDashboard(response) {
    var url;
    try {
      url = new URL(response.url, location.href);
    } catch (error) {
      return false;
    }
    var type = response.headers.get("Content-Type") || "";
    return (
      url.origin === dashboard.origin &&
      url.pathname.indexOf(dashboard.pathname) === 0 &&
      /^text\/html(\s*;|$)/i.test(type)
    );
  }

  function parsable(text) {
    var head = null;
    var prepared = text.replace(HX_OPEN, '<template hx type="$1"$2').replace(HX_CLOSE, "</template>");
    var body = prepared.replace(HEAD, function (match) {
      head = match;
      return "";
    });
    var forms = new Set([body, "<template>" + body + "</template>"]);
    if (head !== null) {
      forms.add(head);
    }
    return forms;
  }

  function admitted(html) {
    var found = false;
    pending.forEach(function (forms) {
      found = found || forms.has(html);
    });
    return found;
  }

  var policy;
  try {
    policy = window.trustedTypes.createPolicy(NAME, {
      createHTML: function (html) {
        if (typeof html === "string" && admitted(html)) {
          return html;
        }
        throw new TypeError(
          "flask-statistics: refused to parse HTML that is not a response of the dashboard at " +
            dashboard.href
        );
      },
    });
  } catch (error) {
    // The page's CSP names other policies: htmx cannot swap under it. Say how to fix it.
    console.error(
      "flask-statistics: add '" + NAME + "' to the trusted-types directive of the " +
        "Content-Security-Policy, or the dashboard cannot update in place (" + error + ")"
    );
    return;
  }

  window.htmx.registerExtension("flask-statistics-trusted-types", {
    init: function (api) {
      api.initSecurity(policy);
    },
  });

  document.addEventListener("htmx:after:request", function (event) {
    var ctx = event.detail && event.detail.ctx;
    var raw = ctx && ctx.response && ctx.response.raw;
    if (raw && typeof ctx.text === "string" && fromDashboard(raw)) {
      pending.set(ctx, parsable(ctx.text));
      if (pending.size > MAX_PENDING) {
        pending.delete(pending.keys().next().value);
      }
    }
  });

  document.addEventListener("htmx:finally:request", function (event) {
    var ctx = event.detail && event.detail.ctx;
    if (ctx) {
      pending.delete(ctx);
    }
  });
})();
