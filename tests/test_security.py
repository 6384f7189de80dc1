"""The dashboard is safe to expose: guarded everywhere, strict headers, recorded
data escaped in HTML and SVG, no inline code, and no query string makes it fail."""

from __future__ import annotations

import hashlib
import logging
import re
import typing as t
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import quote, quote_from_bytes, urlsplit

import pytest
from dashboard_support import (
    HISTORY_RESTORE,
    HOSTILE_BROWSER,
    HOSTILE_EXCEPTION,
    HOSTILE_PATH,
    HOSTILE_PLATFORM,
    HOSTILE_UA,
    HTMX,
    PARTIAL_ENDPOINTS,
    QS,
    Page,
    dashboard_urls,
    indexes,
    insert,
    row,
    sample_rows,
)
from flask import Response, abort, redirect
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flask_statistics.config import DEFAULTS

TEMPLATES = Path(__file__).parent.parent / "flask_statistics" / "templates"
STATIC = Path(__file__).parent.parent / "flask_statistics" / "static" / "statistics"
STRICT_CSP = DEFAULTS["STATISTICS_CSP"]
EXTERNAL_REL = "noopener noreferrer nofollow"


def dashboard_rules(app: t.Any) -> list[t.Any]:
    return [rule for rule in app.url_map.iter_rules() if rule.endpoint.startswith("statistics.")]


def url_for_rule(app: t.Any, rule: t.Any) -> str:
    values = {"filename": "statistics/dashboard.css", "index": 1}
    with app.test_request_context():
        from flask import url_for

        return url_for(rule.endpoint, **{k: values[k] for k in rule.arguments})


# ---------------------------------------------------------------------------------
# The guard


def test_every_dashboard_endpoint_is_guarded(make_app: t.Any) -> None:
    calls: list[str] = []

    def guard() -> t.Any:
        from flask import request

        calls.append(request.path)
        return Response("keep out", status=403)

    app, *_ = make_app(guard=guard)
    insert(app, [row()])
    rules = dashboard_rules(app)
    endpoints = {rule.endpoint for rule in rules}
    # The walk covers the page, every partial, the detail page and static files.
    assert {"statistics.index", "statistics.detail", "statistics.static"} <= endpoints
    assert {f"statistics.{name}" for name in PARTIAL_ENDPOINTS} <= endpoints
    client = app.test_client()
    for rule in rules:
        url = url_for_rule(app, rule)
        for headers in ({}, HTMX):
            response = client.get(url, headers=headers)
            assert response.status_code == 403, (rule.endpoint, headers)
            assert response.get_data(as_text=True) == "keep out"
            # Even a refused response carries the dashboard's headers.
            assert response.headers["Content-Security-Policy"] == STRICT_CSP
    assert len(calls) == 2 * len(rules)


def test_guard_that_allows_lets_every_endpoint_through(make_app: t.Any) -> None:
    app, *_ = make_app(guard=lambda: None)
    insert(app, [row()])
    client = app.test_client()
    for rule in dashboard_rules(app):
        url = url_for_rule(app, rule)
        assert client.get(url).status_code == 200, rule.endpoint


@pytest.mark.parametrize(
    ("guard", "status"),
    [
        (lambda: abort(401), 401),
        (lambda: redirect("/login"), 302),
        (lambda: ("not for you", 404), 404),
    ],
)
def test_guard_can_answer_in_any_flask_way(make_app: t.Any, guard: t.Any, status: int) -> None:
    app, *_ = make_app(guard=guard)
    client = app.test_client()
    for path in ("/statistics/", "/statistics/partials/kpis", "/statistics/static/statistics/dashboard.js"):
        assert client.get(path).status_code == status, path


GUARDED_PATHS = ("/statistics/", "/statistics/partials/kpis", "/statistics/requests/1",
                 "/statistics/static/statistics/dashboard.js")


@pytest.mark.parametrize("allow", [None, True], ids=["None", "True"])
def test_guard_returning_none_or_true_allows(make_app: t.Any, allow: t.Any) -> None:
    app, *_ = make_app(guard=lambda: allow)
    insert(app, [row()])
    client = app.test_client()
    for path in GUARDED_PATHS:
        response = client.get(path)
        assert response.status_code == 200, path
    assert "Hits" in client.get("/statistics/").get_data(as_text=True)


def test_guard_returning_false_forbids(make_app: t.Any) -> None:
    app, *_ = make_app(guard=lambda: False)
    insert(app, [row()])
    client = app.test_client()
    for path in GUARDED_PATHS:
        response = client.get(path)
        assert response.status_code == 403, path
        assert response.headers["Cache-Control"] == "no-store", path
        assert response.headers["Content-Security-Policy"] == STRICT_CSP, path


def test_guard_refusal_goes_through_the_apps_error_handler(make_app: t.Any) -> None:
    app, *_ = make_app(guard=lambda: False)

    @app.errorhandler(403)
    def forbidden(error: t.Any) -> tuple[str, int]:
        return "ask an admin", 403

    response = app.test_client().get("/statistics/")
    assert (response.status_code, response.get_data(as_text=True)) == (403, "ask an admin")


@pytest.mark.parametrize(
    ("guard", "status"),
    [
        (lambda: False, 403),
        (lambda: abort(403), 403),
        (lambda: redirect("/login"), 302),
        (lambda: ("not found", 404), 404),
        (lambda: Response("keep out", status=403), 403),
    ],
    ids=["False", "abort", "redirect", "tuple", "response"],
)
def test_guard_answers_are_never_cached(make_app: t.Any, guard: t.Any, status: int) -> None:
    app, *_ = make_app(guard=guard)
    client = app.test_client()
    for path in GUARDED_PATHS:
        response = client.get(path)
        assert response.status_code == status, path
        # A browser must ask again once the user has logged in.
        assert response.headers["Cache-Control"] == "no-store", path


def test_unguarded_dashboard_warns_at_start_up(make_app: t.Any, caplog: t.Any) -> None:
    with caplog.at_level(logging.WARNING, logger="flask_statistics"):
        make_app()
    assert any("no guard" in r.getMessage() for r in caplog.records)


def no_guard_warning(caplog: t.Any) -> str:
    messages = [r.getMessage() for r in caplog.records if "no guard" in r.getMessage()]
    assert len(messages) == 1, messages
    return messages[0]


def test_no_guard_warning_shows_the_apps_own_model(make_app: t.Any, caplog: t.Any) -> None:
    with caplog.at_level(logging.WARNING, logger="flask_statistics"):
        _, _, model, _ = make_app(model="seed")
    message = no_guard_warning(caplog)
    assert f"Statistics(app, db, {model.__name__}, lambda: " in message


def test_no_guard_warning_without_a_model_passes_the_guard_by_name(make_app: t.Any, caplog: t.Any) -> None:
    with caplog.at_level(logging.WARNING, logger="flask_statistics"):
        make_app(model="default")
    message = no_guard_warning(caplog)
    assert "Statistics(app, db, guard=lambda: " in message
    assert "Request" not in message  # no model the app does not have


@pytest.mark.parametrize("kwargs", [{"guard": lambda: None}, {"config": {"DEBUG": True}}])
def test_no_warning_with_a_guard_or_in_debug(make_app: t.Any, caplog: t.Any, kwargs: dict[str, t.Any]) -> None:
    with caplog.at_level(logging.WARNING, logger="flask_statistics"):
        make_app(**kwargs)
    assert not any("no guard" in r.getMessage() for r in caplog.records)


# ---------------------------------------------------------------------------------
# Headers


def responses_to_check(app: t.Any) -> dict[str, t.Any]:
    client = app.test_client()
    urls = dashboard_urls(app, detail_index=indexes(app)[0])
    found = {name: client.get(url) for name, url in urls.items()}
    found.update({f"{name} (htmx)": client.get(url, headers=HTMX) for name, url in urls.items()})
    found["static"] = client.get("/statistics/static/statistics/dashboard.js")
    found["400"] = client.get("/statistics/?status=abc")
    found["404"] = client.get("/statistics/requests/987654321")
    return found


def test_strict_headers_on_every_dashboard_response(make_app: t.Any) -> None:
    app, *_ = make_app()
    insert(app, [row()])

    @app.route("/app-page")
    def app_page() -> str:
        return "the app's own page"

    for name, response in responses_to_check(app).items():
        headers = response.headers
        assert headers["Content-Security-Policy"] == STRICT_CSP, name
        assert headers["X-Content-Type-Options"] == "nosniff", name
        assert headers["Referrer-Policy"] in ("same-origin", "no-referrer"), name
    for directive in ("default-src 'none'", "script-src 'self'", "style-src 'self'",
                      "frame-ancestors 'none'", "base-uri 'none'", "form-action 'self'",
                      "require-trusted-types-for 'script'", "trusted-types flask-statistics"):
        assert directive in STRICT_CSP
    assert "unsafe" not in STRICT_CSP
    # The app's own pages are left alone.
    own = app.test_client().get("/app-page")
    assert "Content-Security-Policy" not in own.headers


def test_csp_is_configurable(make_app: t.Any) -> None:
    policy = "default-src 'self'; object-src 'none'"
    app, *_ = make_app(config={"STATISTICS_CSP": policy})
    assert app.test_client().get("/statistics/").headers["Content-Security-Policy"] == policy


@pytest.mark.parametrize("off", [None, "", False])
def test_csp_can_be_turned_off(make_app: t.Any, off: t.Any) -> None:
    app, *_ = make_app(config={"STATISTICS_CSP": off})
    response = app.test_client().get("/statistics/")
    assert "Content-Security-Policy" not in response.headers
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_pages_with_recorded_data_are_not_cached(make_app: t.Any) -> None:
    app, *_ = make_app()
    insert(app, [row()])
    for name, response in responses_to_check(app).items():
        if name == "static":
            # The package's own files may be cached (revalidated by ETag).
            assert "no-store" not in response.headers.get("Cache-Control", ""), name
        else:
            assert response.headers["Cache-Control"] == "no-store", name


# ---------------------------------------------------------------------------------
# Recorded data is hostile

HOSTILE_REFERRERS = {
    "javascript:alert('r1')": False,
    "JaVaScRiPt:alert('r2')": False,
    " javascript:alert('r3')": False,
    "data:text/html,<script>alert('r4')</script>": False,
    "//evil.example/protocol-relative": False,
    "vbscript:msgbox('r5')": False,
    "https://ok.example/?a=<b>&c=\"d\"": True,
    "http://ok2.example/": True,
}


@pytest.fixture
def hostile(make_app: t.Any) -> t.Any:
    app, *_ = make_app(model="default")
    rows = [
        row(path=HOSTILE_PATH, user_agent=HOSTILE_UA, browser=HOSTILE_BROWSER,
            platform=HOSTILE_PLATFORM, exception=HOSTILE_EXCEPTION, status_code=500,
            remote_address="<b>bold</b>", mimetype="text/html\"><script>alert('m')</script>",
            method="GET<script>", referrer=referrer)
        for referrer in HOSTILE_REFERRERS
    ]
    insert(app, rows)
    return app


def hostile_pages(app: t.Any) -> dict[str, str]:
    client = app.test_client()
    pages = {}
    for index in indexes(app):
        pages[f"detail {index}"] = client.get(f"/statistics/requests/{index}?{QS}").get_data(as_text=True)
    for name, url in dashboard_urls(app).items():
        if name != "detail":
            pages[name] = client.get(url).get_data(as_text=True)
            pages[f"{name} (htmx)"] = client.get(url, headers=HTMX).get_data(as_text=True)
    return pages


def test_hostile_recorded_data_renders_escaped_in_html(hostile: t.Any) -> None:
    for name, html in hostile_pages(hostile).items():
        for raw in ("<script>alert(", "<img src=x", "<svg onload", "<b>bold</b>", "\" onmouseover"):
            assert raw not in html, (name, raw)
        page = Page(html)
        assert not page.inline_scripts and not page.handlers and not page.styles, name
    shown = Page(hostile_pages(hostile)[f"detail {indexes(hostile)[0]}"]).all_text
    # Shown as text, exactly as recorded (control characters made visible).
    for text in ("/<script>alert('p')</script>\"'&]]>\\x1b[31m", "<img src=x onerror=alert('ua')>",
                 "<svg onload=alert('b')>", HOSTILE_EXCEPTION, "<b>bold</b>"):
        assert text in shown, text


def test_referrers_are_links_only_when_http(hostile: t.Any) -> None:
    for name, html in hostile_pages(hostile).items():
        for link in Page(html).links:
            href = (link.get("href") or "").strip().lower()
            assert not href.startswith(("javascript:", "data:", "vbscript:", "//")), (name, href)
            if href.startswith(("http://", "https://")):
                assert link.get("rel") == EXTERNAL_REL, (name, link)
    client = hostile.test_client()
    for index, (referrer, is_link) in zip(indexes(hostile), HOSTILE_REFERRERS.items()):
        html = client.get(f"/statistics/requests/{index}").get_data(as_text=True)
        field = re.search(r'data-field="referrer">.*?</dd>', html, re.S)
        assert field is not None
        cell = Page(field.group(0))
        assert referrer.strip() in cell.all_text  # always shown as text
        if is_link:
            assert [a["href"] for a in cell.links] == [referrer]
            assert cell.links[0]["rel"] == EXTERNAL_REL
        else:
            assert not cell.links, referrer


@pytest.mark.parametrize("backend", ["sqlite"])  # servers enforce the model's lengths
def test_ten_kilobyte_values_render_shortened(make_app: t.Any) -> None:
    app, *_ = make_app()
    huge_path = "/" + "p" * 10_000
    insert(app, [row(path=huge_path, user_agent="u" * 10_000, browser="b" * 10_000)])
    client = app.test_client()
    log = client.get(f"/statistics/partials/requests?{QS}", headers=HTMX)
    assert log.status_code == 200
    assert len(log.get_data()) < 20_000  # cut in the table, not 30 KB per row
    detail = client.get(f"/statistics/requests/{indexes(app)[0]}")
    assert huge_path in Page(detail.get_data(as_text=True)).all_text  # whole on the detail page
    top = client.get(f"/statistics/partials/top?{QS}", headers=HTMX).get_data(as_text=True)
    for svg in re.findall(r"<svg .*?</svg>", top, re.S):
        ET.fromstring(svg)


def test_hostile_labels_are_escaped_inside_the_svg(hostile: t.Any) -> None:
    html = hostile.test_client().get(f"/statistics/partials/top?{QS}", headers=HTMX).get_data(as_text=True)
    svgs = re.findall(r"<svg .*?</svg>", html, re.S)
    assert len(svgs) == 5
    for svg in svgs:
        root = ET.fromstring(svg)  # well-formed: no label broke out
        tags = {el.tag.rsplit("}", 1)[-1] for el in root.iter()}
        assert not tags & {"script", "style", "foreignObject", "iframe"}
        for el in root.iter():
            for name, value in el.attrib.items():
                assert not name.lower().startswith("on"), name
                assert not value.strip().lower().startswith("javascript:"), value
    assert "&lt;script&gt;alert(&#x27;p&#x27;)" in html or "&lt;script&gt;alert('p')" in html


# ---------------------------------------------------------------------------------
# No inline code anywhere


def all_pages(app: t.Any) -> dict[str, str]:
    client = app.test_client()
    first = indexes(app)[0]
    pages: dict[str, str] = {}
    for query in (QS, "status=abc&start=2024-13-01"):
        for name, url in dashboard_urls(app, detail_index=first, query=query).items():
            for label, headers in (("page", {}), ("htmx", HTMX), ("restore", HISTORY_RESTORE)):
                pages[f"{name} {label} {query[:10]}"] = client.get(url, headers=headers).get_data(as_text=True)
    pages["404"] = client.get("/statistics/requests/987654321").get_data(as_text=True)
    pages["index htmx filtered"] = client.get(
        f"/statistics/?{QS}&path=&method=GET", headers=HTMX
    ).get_data(as_text=True)
    return pages


def test_no_inline_script_or_style_in_any_page_or_partial(make_app: t.Any) -> None:
    app, *_ = make_app()
    insert(app, sample_rows())
    pages = all_pages(app)
    assert len(pages) > 50
    for name, html in pages.items():
        page = Page(html)
        assert not page.inline_scripts, name
        assert not page.styles, name
        assert not page.style_attributes, (name, page.style_attributes)
        assert not page.handlers, (name, page.handlers)
        for script in page.scripts:
            assert (script.get("src") or "").startswith("/statistics/static/statistics/"), name
        for tag, attrs in page.elements:
            for attr, value in attrs.items():
                assert "javascript:" not in (value or "").lower(), (name, tag, attr)
                assert not attr.startswith(("hx-on", "data-hx-on")), (name, attr)
                # Trigger filters ([...]) and js: values need eval, which the CSP forbids.
                if attr.startswith("hx-") and attr != "hx-push-url":
                    assert not (value or "").startswith("js:"), (name, attr)
                if attr == "hx-trigger":
                    assert "[" not in (value or ""), (name, value)
        if "<html" in html:
            assert 'name="htmx-config"' in html and '"includeIndicatorCSS":false' in html


def test_templates_have_no_inline_code() -> None:
    pattern = re.compile(r"<script(>| [^>]*>)[^<]|<script>|<style|style=\"|hx-on|javascript:")
    offenders = [
        f"{path.relative_to(TEMPLATES)}:{number}: {line.strip()}"
        for path in TEMPLATES.rglob("*.html")
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if pattern.search(line)
    ]
    assert not offenders
    assert len(list(TEMPLATES.rglob("*.html"))) >= 12


def test_static_files_are_served_with_a_script_type(make_app: t.Any) -> None:
    app, *_ = make_app()
    client = app.test_client()
    ours = ("dashboard.js", "trusted-types.js")
    for name in (*ours, "vendor/htmx.min.js", "vendor/pygal-tooltips.min.js"):
        response = client.get(f"/statistics/static/statistics/{name}")
        assert response.status_code == 200
        assert response.mimetype in ("text/javascript", "application/javascript")
    for name in ours:
        our_js = client.get(f"/statistics/static/statistics/{name}").get_data(as_text=True)
        assert "eval(" not in our_js and "new Function" not in our_js, name
        # No HTML is written from a string (dashboard.js only defines a setter that empties).
        assert not re.search(r"\.(inner|outer)HTML\s*=[^=]|insertAdjacentHTML|document\.write", our_js), name


def test_vendored_files_match_their_recorded_checksums() -> None:
    record = (STATIC / "VENDORED.md").read_text(encoding="utf-8")
    vendored = sorted((STATIC / "vendor").iterdir())
    assert [p.name for p in vendored] == [
        "htmx.LICENSE", "htmx.min.js", "pygal-tooltips.LICENSE", "pygal-tooltips.min.js",
    ]
    for path in vendored:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        line = next(line for line in record.splitlines() if line.startswith(f"| `vendor/{path.name}`"))
        assert digest in line, path.name
    assert 'version="4.0.1"' in (STATIC / "vendor" / "htmx.min.js").read_text(encoding="utf-8")


def test_pages_load_only_our_own_static_files_in_order(make_app: t.Any) -> None:
    app, *_ = make_app()
    page = Page(app.test_client().get("/statistics/").get_data(as_text=True))
    sources = [s.get("src") for s in page.scripts]
    # The Trusted Types policy is handed to htmx before it initialises, and
    # dashboard.js must run before pygal-tooltips initialises the charts.
    assert sources == [
        "/statistics/static/statistics/vendor/htmx.min.js",
        "/statistics/static/statistics/trusted-types.js",
        "/statistics/static/statistics/dashboard.js",
        "/statistics/static/statistics/vendor/pygal-tooltips.min.js",
    ]
    assert all("defer" in s for s in page.scripts)
    for tag, attrs in page.elements:
        if tag in ("link", "script", "img"):
            value = attrs.get("src") or attrs.get("href") or ""
            assert value.startswith("/statistics/static/"), (tag, value)


# ---------------------------------------------------------------------------------
# No query string makes the dashboard fail

FIELDS = ["start", "end", "path", "path_match", "status", "method", "browser", "platform",
          "remote_address", "user_agent", "sort", "order", "page"]

values = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", " ", "2024-05-01", "2024-02-30", "0001-01-01", "9999-12-31", "4xx",
                     "6xx", "0", "-1", "1e9", str(10**30), "prefix", "exact", "asc", "desc",
                     "date", "size", "GET", "get", "%", "_", "/", "\\", "' OR 1=1 --",
                     "x" * 3000, "<script>", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "\u202e", "\x00"]),
    st.integers(min_value=-(10**12), max_value=10**12).map(str),
    st.dates().map(lambda d: d.isoformat()),
)
raw_bytes = st.binary(max_size=12).map(quote_from_bytes)  # invalid UTF-8, %00...
query_strings = st.lists(
    st.tuples(st.one_of(st.sampled_from(FIELDS), st.text(max_size=8)), values, st.booleans()),
    max_size=6,
).map(lambda items: "&".join(
    f"{quote(k)}={quote(v) if encode else quote(v, safe='&=%')}" for k, v, encode in items
))


@pytest.fixture
def fuzz_target(make_app: t.Any, backend: str) -> t.Any:
    app, *_ = make_app()
    insert(app, sample_rows())
    first = indexes(app)[0]
    urls = list(dashboard_urls(app, detail_index=first, query="").values())
    return app, urls, (120 if backend == "sqlite" else 25)


def test_fuzzed_query_strings_never_fail(fuzz_target: t.Any) -> None:
    app, urls, examples = fuzz_target
    client = app.test_client()

    @settings(max_examples=examples, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(url=st.sampled_from(urls), query=st.one_of(query_strings, raw_bytes),
           headers=st.sampled_from([{}, HTMX, HISTORY_RESTORE]))
    def check(url: str, query: str, headers: dict[str, str]) -> None:
        response = client.get(f"{url}?{query}", headers=headers)
        if response.status_code == 302 and not headers and urlsplit(url).path == "/statistics/":
            # A page with empty or default fields goes to its canonical URL, which is final.
            response = client.get(response.headers["Location"], headers=headers)
            assert response.status_code == 200, (url, query)
        assert response.status_code in (200, 400), (url, query, response.status_code)
        if response.status_code == 400:
            assert "These filters can’t be used" in response.get_data(as_text=True)
        assert urlsplit(url).path.startswith("/statistics/")

    check()


# ---------------------------------------------------------------------------------
# Invisible and reordering characters, and huge values in attributes

#: One of each kind clean() must show escaped: bidi overrides, embeddings and
#: isolates, the Arabic letter mark, zero-width characters, the BOM, line and
#: paragraph separators, and C0/C1 controls (NUL aside, which no backend stores).
INVISIBLE = ("\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068",
             "\u2069", "\u061c", "\u200b", "\u200c", "\u200d", "\u200e", "\u200f", "\ufeff",
             "\u2028", "\u2029", "\x01", "\x09", "\x0a", "\x1b", "\x7f", "\x85", "\x9f")
TROJAN = "".join(INVISIBLE)
SHOWN = "".join(f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}" for c in INVISIBLE)
RECORDED_TEXT = ("path", "user_agent", "referrer", "exception", "remote_address", "browser",
                 "platform", "mimetype", "method")


def test_invisible_characters_are_shown_escaped_everywhere(make_app: t.Any) -> None:
    app, *_ = make_app(model="default")
    values = {
        "path": f"/admin{TROJAN}x", "user_agent": f"ua{TROJAN}", "referrer": f"https://r.example/{TROJAN}",
        "exception": f"KeyError('{TROJAN}')", "remote_address": f"a{TROJAN}",
        "browser": f"b{TROJAN}", "platform": f"p{TROJAN}", "mimetype": f"m{TROJAN}",
        "method": "G\u202eET",
    }
    insert(app, [row(**values)])
    client = app.test_client()
    pages = {name: client.get(url) for name, url in dashboard_urls(app, indexes(app)[0]).items()}
    pages.update({f"{n} (htmx)": client.get(u, headers=HTMX)
                  for n, u in dashboard_urls(app, indexes(app)[0]).items()})
    for name, response in pages.items():
        assert response.status_code == 200, name
        html = response.get_data(as_text=True)
        page = Page(html)
        attributes = " ".join(v or "" for _, attrs in page.elements for v in attrs.values())
        # Neither as characters nor as character references, in text, attributes or SVG.
        for char in INVISIBLE[:18]:
            assert char not in html and char not in page.all_text and char not in attributes, (name, hex(ord(char)))
        for char in ("\x01", "\x1b", "\x7f", "\x85", "\x9f"):
            assert char not in html, (name, hex(ord(char)))
    shown = Page(pages["detail"].get_data(as_text=True)).all_text
    for column in RECORDED_TEXT:
        assert values[column].replace(TROJAN, SHOWN).replace("\u202e", "\\u202e") in shown, column
    # The request log and the charts show the escapes too.
    assert "/admin\\u202a" in Page(pages["requests"].get_data(as_text=True)).all_text
    top = pages["top (htmx)"].get_data(as_text=True)
    assert "b\\u202a\\u202b" in top  # the browser bar's label inside the SVG
    root = ET.fromstring(re.search(r"<svg.*?</svg>", top, re.S).group(0))  # type: ignore[union-attr]
    assert any("\\u202e" in (el.text or "") for el in root.iter())


def test_a_referrer_with_invisible_characters_is_not_a_link() -> None:
    from flask_statistics.security import external_url

    assert external_url("https://ok.example/path") == "https://ok.example/path"
    for char in ("\u202e", "\u200b", "\u2066", "\ufeff", "\x85", " "):
        assert external_url(f"https://ok.example/{char}moc.live") is None, hex(ord(char))


@pytest.mark.parametrize("backend", ["sqlite"])  # servers enforce the model's lengths
def test_megabyte_values_are_cut_in_attributes(make_app: t.Any) -> None:
    app, *_ = make_app()
    huge = "x" * 1_000_000
    insert(app, [row(referrer="https://big.example/" + huge, path="/" + huge, user_agent=huge,
                     browser=huge, platform=huge, remote_address=huge),
                 row(referrer="not a url " + huge)])
    client = app.test_client()
    first = indexes(app)[0]
    for name, url in dashboard_urls(app, first).items():
        for headers in ({}, HTMX):
            response = client.get(url, headers=headers)
            assert response.status_code == 200, name
            page = Page(response.get_data(as_text=True))
            for tag, attrs in page.elements:
                for attribute, value in attrs.items():
                    if attribute in ("title", "aria-label") or attribute.startswith("data-"):
                        assert len(value or "") <= 256, (name, tag, attribute)
            if name != "detail":
                assert len(response.get_data()) < 200_000, name
    top = client.get(f"/statistics/partials/top?{QS}&referrer=big.example", headers=HTMX).get_data(as_text=True)
    titles = [attrs["title"] for _, attrs in Page(top).elements if attrs.get("title")]
    assert any(t_.startswith("https://big.example/xxx") and t_.endswith("…") for t_ in titles)
    # The detail page still shows the whole stored value.
    detail = client.get(f"/statistics/requests/{first}").get_data(as_text=True)
    assert "https://big.example/" + huge in Page(detail).all_text
