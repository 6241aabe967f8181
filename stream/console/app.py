"""The console's web application (Starlette, Jinja2 templates, one stylesheet, no script): pages and `/api/`.

Pages and the API call the same `Console` methods (stream.console.queries) and differ only in the rendering:
HTML through autoescaping templates, or JSON. Every page and API route needs a user (stream.console.auth);
state changes from a browser need the CSRF token, bearer requests do not. Every response forbids scripts,
framing and foreign resources (Content-Security-Policy), so even markup that escaped escaping would be inert.
"""

from __future__ import annotations

from importlib import resources
from typing import Any, Callable
from urllib.parse import quote, urlencode

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..errors import FundflowError
from ..model.timefmt import format_ts, parse_rfc3339_ms
from . import auth
from .auth import Tokens, User
from ..sinks.labels import STATUSES
from .queries import Console, NotFound, QueueFilter, Refused, elapsed, parse_cursor

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # same-origin, not no-referrer: with no-referrer Chromium sends `Origin: null` on our own forms, which the
    # origin checks must refuse (a sandboxed frame of another site sends it too); other sites still get none.
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
FILTERS = ("rule", "kind", "severity", "status", "assignee", "account", "loan", "since", "until", "version")


def _q(value: Any) -> str:
    """A path segment or query value: every character that is not plainly safe percent-encoded."""
    return quote(str(value), safe="")


def _templates() -> Environment:
    env = Environment(loader=PackageLoader("stream.console", "templates"),
                      autoescape=select_autoescape(default=True, default_for_string=True))
    env.filters["q"] = _q
    env.filters["ts"] = lambda ms: format_ts(int(ms)) if ms is not None else ""
    env.filters["pct"] = lambda v: "—" if v is None else f"{100 * v:.1f}%"
    env.filters["elapsed"] = elapsed
    env.filters["status_text"] = lambda s: str(s).replace("_", " ")
    return env


def parse_time(name: str, text: str | None) -> int | None:
    if not text:
        return None
    value = text.strip()
    if value.isdigit():
        return int(value)
    try:
        return parse_rfc3339_ms(value)
    except ValueError:
        raise Refused(f"{name}: expected an RFC 3339 time like 2026-03-02T10:00:00Z or epoch milliseconds") from None


def queue_filter(params: Any) -> QueueFilter:
    def get(name: str) -> str | None:
        value = params.get(name)
        return value.strip() if isinstance(value, str) and value.strip() else None

    limit = get("limit")
    if limit is not None and not limit.isdigit():
        raise Refused("limit: expected a number")
    return QueueFilter(rule_id=get("rule"), kind=get("kind"), severity=get("severity"), status=get("status"),
                       assignee=get("assignee"), account=get("account"), loan=get("loan"),
                       since_ms=parse_time("since", get("since")), until_ms=parse_time("until", get("until")),
                       rule_version=get("version"), before=parse_cursor(get("before")),
                       limit=int(limit) if limit else 50)


def _public(detail: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in detail.items() if not key.startswith("_")}


def create_app(console: Console, tokens: Tokens) -> Starlette:
    env = _templates()

    def user_of(request: Request) -> tuple[User | None, str | None]:
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            return tokens.find(header[7:].strip()), "bearer"
        cookie = request.cookies.get(auth.COOKIE)
        return (tokens.find(cookie), "cookie") if cookie else (None, None)

    def headers(response: Response) -> Response:
        response.headers.update(SECURITY_HEADERS)
        return response

    def page(name: str, request: Request, user: User | None, **context: Any) -> Response:
        token = request.cookies.get(auth.COOKIE)
        html = env.get_template(name).render(user=user, csrf=auth.csrf_token(token) if token else "",
                                             statuses=STATUSES, request_path=request.url.path, **context)
        return headers(HTMLResponse(html, status_code=context.get("status", 200)))

    def error_page(request: Request, user: User | None, status: int, message: str) -> Response:
        return page("error.html", request, user, status=status, message=message)

    def api_error(status: int, message: str) -> Response:
        response = JSONResponse({"error": message}, status_code=status)
        if status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="fundflow console"'
        return headers(response)

    def guarded(api: bool, *, change: bool = False) -> Callable:
        """Wraps a handler(request, user): authentication, CSRF for changes, errors as pages or JSON."""
        def wrap(handler: Callable) -> Callable:
            def endpoint(request: Request) -> Response:
                user, via = user_of(request)
                if user is None:
                    if api:
                        return api_error(401, "authentication required: Authorization: Bearer TOKEN")
                    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                    return headers(RedirectResponse(f"/login?{urlencode({'next': target})}", status_code=303))
                try:
                    if change:
                        _check_change(request, via)
                    return handler(request, user)
                except NotFound as exc:
                    return api_error(404, str(exc)) if api else error_page(request, user, 404, str(exc))
                except Refused as exc:
                    return api_error(exc.status, str(exc)) if api else error_page(request, user, exc.status,
                                                                                   str(exc))
                except FundflowError as exc:
                    return api_error(503, str(exc)) if api else error_page(request, user, 503, str(exc))
            return endpoint
        return wrap

    # -- pages -------------------------------------------------------------------------------------------------

    @guarded(api=False)
    def queue_page(request: Request, user: User) -> Response:
        params = request.query_params
        try:
            where = queue_filter(params)
        except Refused as exc:
            return error_page(request, user, 400, str(exc))
        result = console.queue(where)
        current = {name: params.get(name, "") for name in FILTERS}
        next_url = None
        if result["next"]:
            next_url = "/?" + urlencode({**{k: v for k, v in current.items() if v}, "before": result["next"]})
        return page("queue.html", request, user, result=result, facets=console.facets(), current=current,
                    next_url=next_url)

    @guarded(api=False)
    def warning_page(request: Request, user: User) -> Response:
        detail = console.warning(request.path_params["warning_id"])
        svg = console.graph_svg(detail)
        return page("warning.html", request, user, d=detail, w=detail["warning"],
                    graph=Markup(svg) if svg else None)       # built escaped by stream.console.graph

    @guarded(api=False, change=True)
    def label_form(request: Request, user: User) -> Response:
        warning_id = request.path_params["warning_id"]
        form = request.state.form
        console.label(warning_id, actor=user.name, role=user.role, status=form.get("status") or None,
                      assignee=form.get("assignee") if "assignee" in form else None, note=form.get("note"))
        return headers(RedirectResponse(f"/warnings/{_q(warning_id)}", status_code=303))

    @guarded(api=False)
    def account_page(request: Request, user: User) -> Response:
        return page("account.html", request, user, a=console.account(request.path_params["account"]))

    @guarded(api=False)
    def rules_page(request: Request, user: User) -> Response:
        days = request.query_params.get("days", "7")
        if not days.isdigit() or not 0 < int(days) <= 3650:
            return error_page(request, user, 400, "days: expected 1-3650")
        return page("rules.html", request, user, r=console.rules(int(days)))

    async def login(request: Request) -> Response:
        next_url = request.query_params.get("next", "/")
        if request.method == "POST":
            if not _same_origin(request):          # login CSRF: another site logging the browser in as someone
                return page("error.html", request, None, status=403, message="cross-origin login refused")
            form = await request.form()
            next_url = str(form.get("next") or "/")
            user = tokens.find(str(form.get("token") or ""))
            if user is None:
                return page("login.html", request, None, next=_local(next_url), failed=True, status=401)
            response = RedirectResponse(_local(next_url), status_code=303)
            response.set_cookie(auth.COOKIE, user.token, httponly=True, samesite="strict", path="/",
                                secure=request.url.scheme == "https")
            return headers(response)
        return page("login.html", request, None, next=_local(next_url), failed=False)

    @guarded(api=False, change=True)
    def logout(request: Request, user: User) -> Response:
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(auth.COOKIE, path="/")
        return headers(response)

    # -- the API -----------------------------------------------------------------------------------------------

    @guarded(api=True)
    def api_warnings(request: Request, user: User) -> Response:
        result = console.queue(queue_filter(request.query_params))
        for case in result["cases"]:
            case.pop("first", None)
        return headers(JSONResponse(result))

    @guarded(api=True)
    def api_warning(request: Request, user: User) -> Response:
        return headers(JSONResponse(_public(console.warning(request.path_params["warning_id"]))))

    @guarded(api=True, change=True)
    def api_label(request: Request, user: User) -> Response:
        body = request.state.json
        if not isinstance(body, dict):
            raise Refused("expected a JSON object: {\"status\": ..., \"assignee\": ..., \"note\": ...}")
        values = {}
        for name in ("status", "assignee", "note"):
            value = body.get(name)
            if value is not None and not isinstance(value, str):
                raise Refused(f"{name}: expected text")
            values[name] = value
        event = console.label(request.path_params["warning_id"], actor=user.name, role=user.role, **values)
        return headers(JSONResponse(event.to_dict(), status_code=201))

    @guarded(api=True)
    def api_account(request: Request, user: User) -> Response:
        return headers(JSONResponse(console.account(request.path_params["account"]), status_code=200))

    @guarded(api=True)
    def api_rules(request: Request, user: User) -> Response:
        days = request.query_params.get("days", "7")
        if not days.isdigit() or not 0 < int(days) <= 3650:
            raise Refused("days: expected 1-3650")
        return headers(JSONResponse(console.rules(int(days))))

    @guarded(api=True)
    def api_me(request: Request, user: User) -> Response:
        return headers(JSONResponse({"name": user.name, "role": user.role}))

    async def with_body(handler: Callable, request: Request) -> Response:
        """Read the body on the event loop, then run the (blocking) handler in a thread."""
        from starlette.concurrency import run_in_threadpool
        if request.headers.get("content-type", "").startswith("application/json"):
            try:
                request.state.json = await request.json()
            except ValueError:
                request.state.json = None
            request.state.form = {}
        else:
            form = await request.form()
            request.state.form = {key: str(value) for key, value in form.items()}
            request.state.json = None
        return await run_in_threadpool(handler, request)

    def post(handler: Callable) -> Callable:
        async def endpoint(request: Request) -> Response:
            return await with_body(handler, request)
        return endpoint

    static = resources.files("stream.console").joinpath("static")
    routes = [
        Route("/", queue_page),
        Route("/warnings/{warning_id:path}/labels", post(label_form), methods=["POST"]),
        Route("/warnings/{warning_id:path}", warning_page),
        Route("/accounts/{account:path}", account_page),
        Route("/rules", rules_page),
        Route("/login", login, methods=["GET", "POST"]),
        Route("/logout", post(logout), methods=["POST"]),
        Route("/api/warnings", api_warnings),
        Route("/api/warnings/{warning_id:path}/labels", post(api_label), methods=["POST"]),
        Route("/api/warnings/{warning_id:path}", api_warning),
        Route("/api/accounts/{account:path}", api_account),
        Route("/api/rules", api_rules),
        Route("/api/me", api_me),
        Mount("/static", app=StaticFiles(directory=str(static)), name="static"),
    ]
    return Starlette(routes=routes)


def _check_change(request: Request, via: str | None) -> None:
    """State changes: a same-origin browser (when it says where it comes from) and, for a cookie session, the
    CSRF token of that session."""
    if not _same_origin(request):
        raise Refused("cross-origin request refused", status=403)
    if via == "bearer":
        return
    given = request.headers.get("x-csrf-token") or request.state.form.get("csrf")
    if not auth.csrf_ok(request.cookies.get(auth.COOKIE, ""), given):
        raise Refused("missing or wrong CSRF token: reload the page and try again", status=403)


def _same_origin(request: Request) -> bool:
    """False when the browser says the request comes from another site (an Origin header that is not ours)."""
    origin = request.headers.get("origin")
    return not origin or origin.rstrip("/") == f"{request.url.scheme}://{request.url.netloc}"


def _local(target: str) -> str:
    """Only a path of this site: never //host or a scheme, so the login cannot redirect elsewhere."""
    return target if target.startswith("/") and not target.startswith("//") and "\\" not in target else "/"
