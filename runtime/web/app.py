"""The web gateway: every gateway operation as JSON over HTTP, pushed events over WebSockets.

``create_app(source, options)`` builds the Starlette application; its lifespan opens an
:class:`~runtime.aio.AsyncGateway` over the Gateway ``source()`` builds (``Gateway.connect``
for ``cx web``, an embedded engine in tests) and closes it at shutdown. Every request is
authenticated first (a bearer token, :mod:`runtime.web.tokens`), then read (bounded, strict
JSON: :mod:`runtime.web.body`), then authorized (:mod:`runtime.web.access`, confirmed against
the engine by :mod:`runtime.web.owners`), then carried out. Errors become responses in one
place (:mod:`runtime.web.errors`). The routes are described in docs/WEB.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketDisconnect

from domain.enums import Channel, State
from domain.errors import (
    AuthError,
    BadArgumentError,
    ErrorKind,
    IllegalTransitionError,
    UnknownOpError,
)
from domain.events import for_customer
from domain.ids import agent_subscription, session_subscription
from infra.logs import get_logger
from runtime.aio import AioLimits, AsyncGateway
from runtime.gateway import Gateway, SessionRef
from runtime.netgateway.ops import OPS, check_args, plain_result
from runtime.web.access import RULES, authorize, may_watch_agent, may_watch_session
from runtime.web.body import decode_json, read_body
from runtime.web.errors import WebError, error_body, status_of, type_of
from runtime.web.hub import SUBSCRIBER_QUEUE, Hub, Overflow, Subscriber, ended, in_order, stop
from runtime.web.openapi import openapi
from runtime.web.owners import Owners
from runtime.web.tokens import AccessRole, Claims, verify

__all__ = ["WebOptions", "create_app"]

log = get_logger("cx.web")

#: The web chat and the agent desk (plain HTML and JavaScript), served at /pages/.
PAGES: Final = Path(__file__).resolve().parent / "static"

#: WebSocket close codes: all sent (a session's conversation has ended), a policy refusal
#: (auth, access, arguments), an engine that cannot serve now or a socket that fell behind
#: (try again later), a failure inside.
CLOSE_NORMAL, CLOSE_POLICY, CLOSE_AGAIN, CLOSE_INTERNAL = 1000, 1008, 1013, 1011


@dataclass(frozen=True, slots=True)
class WebOptions:
    key: str  # the token signing key
    max_body_bytes: int = 65536
    #: a WebSocket without an Authorization header must send its token within this time
    auth_timeout_s: float = 10.0
    #: WebSockets waiting for their token at once at most; one more is closed (1013) before
    #: it opens, so that sockets without a token cannot pile up
    max_awaiting_token: int = 64
    subscriber_queue: int = SUBSCRIBER_QUEUE
    #: (pushed events go to the sockets' queues only: none are kept for ``pushed()``)
    limits: AioLimits = field(default_factory=lambda: AioLimits(keep_pushed=0))
    #: seconds since the epoch: when an open socket's token runs out is measured with it
    clock: Callable[[], float] = time.time


class WebGateway:
    """What the routes share once the application has started."""

    def __init__(self, gateway: AsyncGateway, options: WebOptions) -> None:
        self.gateway = gateway
        self.options = options
        self.owners = Owners(gateway)
        self.hub = Hub(gateway)
        self.awaiting_token = 0

    def claims(self, authorization: str | None) -> Claims:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthError("an Authorization header 'Bearer <token>' is required")
        return verify(self.options.key, token.strip())

    # ------------------------------------------------------------------ HTTP

    async def operation(self, request: Request) -> JSONResponse:
        op = request.path_params["op"]
        claims: Claims | None = None
        args: dict[str, Any] = {}
        try:
            claims = self.claims(request.headers.get("authorization"))
            if op not in RULES:
                raise UnknownOpError(f"unknown operation {op[:64]!r}")
            body = await read_body(
                request.stream(), request.headers.get("content-length"),
                self.options.max_body_bytes,
            )  # fmt: skip
            kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if body.strip() and kind != "application/json":
                raise WebError("bad_json", f"Content-Type must be application/json, got {kind[:64]!r}")
            args = check_args(OPS[op], decode_json(body), None)
            await self.owners.confirm(claims, authorize(claims, op, args))
            result = await self._carry_out(op, args)
            if op == "events" and claims.role is AccessRole.CONNECTOR:  # a channel: no whisper
                result = [e for e in result if for_customer(e["data"])]
            return JSONResponse({"result": plain_result(result)})
        except Exception as error:
            return self._refused(error, op, claims, args)

    async def _carry_out(self, op: str, args: dict[str, Any]) -> Any:
        if op == "ping":
            return "pong"
        result = await self.gateway.call(op, **args)
        if isinstance(result, SessionRef):
            channel = Channel(str(args["channel"]).upper())
            self.owners.started(result.channel_session_id, result.conversation_id, channel)
        return result

    def _refused(
        self, error: Exception, op: str, claims: Claims | None, args: dict[str, Any]
    ) -> JSONResponse:
        kind = type_of(error)
        where = {"conversation_id": args.get("conversation_id")} if "conversation_id" in args else {}
        who = {"role": claims.role.value, "subject": claims.subject} if claims else {}
        if kind == ErrorKind.INTERNAL.value:
            log.error("request failed", op=op[:64], error=type(error).__name__, **who, **where)
        elif kind in ("auth", "forbidden"):  # who tried what they may not: worth a look
            log.warning("request refused", op=op[:64], type=kind, **who, **where)
        else:
            log.info("request refused", op=op[:64], type=kind, **who, **where)
        return JSONResponse(error_body(error), status_code=status_of(error))

    # ------------------------------------------------------------------ WebSockets

    async def session_events(self, websocket: WebSocket) -> None:
        session_id = websocket.path_params["channel_session_id"]

        async def events(claims: Claims) -> AsyncGenerator[dict[str, Any]]:
            after = _after_seq(websocket.query_params.get("after_seq", "0"))
            await self.owners.confirm(claims, may_watch_session(claims, session_id))
            conversation_id, _ = await self.owners.session(session_id)
            subscription = session_subscription(session_id)
            subscriber = Subscriber(self.options.subscriber_queue)
            start = self.gateway.subscribe_session

            def stored(seq: int) -> Awaitable[list[dict[str, Any]]]:
                return self.gateway.events(conversation_id, after_seq=seq)

            def frame(event: dict[str, Any], final: bool) -> dict[str, Any]:
                sent = {"subscription": subscription, "conversation_id": conversation_id, "event": event}
                return sent | {"final": True} if final else sent

            try:
                await self.hub.hold(subscriber, subscription, lambda: start(session_id, after_seq=after))
            except IllegalTransitionError:  # refused: its conversation has CLOSED since?
                if (await self.gateway.conversation(conversation_id))["state"] != State.CLOSED:
                    raise
                closed = True
            else:
                closed = False
            if closed:  # what it missed, then the socket is closed
                async for event, final in ended(stored, after):
                    yield frame(event, final)
                return
            last = after
            try:
                yield {"subscribed": subscription, "conversation_id": conversation_id}
                async for event, final in in_order(stored, subscriber, conversation_id, after):
                    last = event["seq"] if event["seq"] is not None else last
                    yield frame(event, final)
            except Overflow:
                raise Overflow({"conversation_id": conversation_id, "seq": last}) from None
            finally:
                await self.hub.release(subscriber, subscription)

        await self._stream(websocket, events)

    async def agent_events(self, websocket: WebSocket) -> None:
        agent_id = websocket.path_params["agent_id"]

        async def events(claims: Claims) -> AsyncGenerator[dict[str, Any]]:
            may_watch_agent(claims, agent_id)
            subscription = agent_subscription(agent_id)
            subscriber = Subscriber(self.options.subscriber_queue)
            start = self.gateway.subscribe_agent
            await self.hub.hold(subscriber, subscription, lambda: start(agent_id))
            try:
                yield {"subscribed": subscription}
                while True:
                    for pushed in await subscriber.take():
                        frame: dict[str, Any] = {"subscription": subscription,
                                 "conversation_id": pushed.conversation_id, "event": pushed.event}  # fmt: skip
                        if pushed.final:  # the last event this desk gets of the conversation
                            frame["final"] = True
                        yield frame
            finally:
                await self.hub.release(subscriber, subscription)

        await self._stream(websocket, events)

    async def _stream(
        self, websocket: WebSocket, events: Callable[[Claims], AsyncGenerator[dict[str, Any]]]
    ) -> None:
        """Authenticate, then send ``events`` until the client goes or an error ends it."""
        header = websocket.headers.get("authorization")
        claims: Claims | None = None
        if header is not None:
            try:
                claims = self.claims(header)
            except AuthError:
                await websocket.close(code=CLOSE_POLICY)  # before accepting: HTTP 403
                return
        elif self.awaiting_token >= self.options.max_awaiting_token:
            log.warning("socket refused: too many waiting for their token", limit=self.awaiting_token)
            await websocket.close(code=CLOSE_AGAIN)
            return
        waiting = claims is None
        if waiting:
            self.awaiting_token += 1  # counted before the accept yields: the bound holds
        try:
            try:
                await websocket.accept()
                if claims is None:
                    claims = await self._first_frame_token(websocket)
            finally:
                if waiting:
                    self.awaiting_token -= 1
            sending = asyncio.ensure_future(self._send_all(websocket, events(claims)))
            listening = asyncio.ensure_future(_until_closed(websocket))
            left = max(0.0, claims.expires - self.options.clock())
            done, _ = await asyncio.wait(
                {sending, listening}, timeout=left, return_when=asyncio.FIRST_COMPLETED
            )
            await stop(listening)
            if sending not in done:
                await stop(sending)
                if not done:  # the token expired while the socket was open
                    raise AuthError("the token has expired: connect again with a new one")
                return
            sending.result()  # all sent: the conversation has ended
            await websocket.close(code=CLOSE_NORMAL)
        except Overflow as behind:
            frame = {"disconnect": "slow_reader", "resume": behind.resume}
            await _close(websocket, frame, CLOSE_AGAIN)
        except Exception as error:
            kind = type_of(error)
            code = {ErrorKind.UNAVAILABLE.value: CLOSE_AGAIN, ErrorKind.INTERNAL.value: CLOSE_INTERNAL}
            if kind == ErrorKind.INTERNAL.value:
                log.error("event stream failed", error=type(error).__name__)
            await _close(websocket, error_body(error), code.get(kind, CLOSE_POLICY))

    async def _first_frame_token(self, websocket: WebSocket) -> Claims:
        try:
            text = await asyncio.wait_for(websocket.receive_text(), self.options.auth_timeout_s)
        except TimeoutError:
            raise AuthError(
                f"no token within {self.options.auth_timeout_s:g} s: send {{\"token\": ...}} first"
            ) from None
        try:
            token = json.loads(text).get("token")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str):
            raise AuthError('the first frame must be {"token": "<token>"}')
        return verify(self.options.key, token)

    @staticmethod
    async def _send_all(websocket: WebSocket, frames: AsyncGenerator[dict[str, Any]]) -> None:
        """Send each frame; closing ``frames`` however this ends (its subscription is let go
        at once, also when the socket closed while a frame was being sent)."""
        async with contextlib.aclosing(frames):
            async for frame in frames:
                await websocket.send_json(frame)


def _after_seq(value: str) -> int:
    if not value.isdigit() or len(value) > 18:
        raise BadArgumentError(f"after_seq must be an integer >= 0, got {value[:32]!r}")
    return int(value)


async def _until_closed(websocket: WebSocket) -> None:
    """Read (and drop) what the client sends until it closes."""
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return


async def _close(websocket: WebSocket, frame: dict[str, Any], code: int) -> None:
    with contextlib.suppress(Exception):
        await websocket.send_json(frame)
        await websocket.close(code=code)


_OPENAPI = openapi()


def create_app(source: Callable[[], Gateway], options: WebOptions) -> Starlette:
    """The application; its lifespan opens and closes the AsyncGateway over ``source()``, and
    while it runs ``app.state.web`` is its :class:`WebGateway`."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with await AsyncGateway.open(source, options.limits) as gateway:
            app.state.web = WebGateway(gateway, options)
            yield

    def web(connection: Request | WebSocket) -> WebGateway:
        found: WebGateway = connection.app.state.web
        return found

    async def operation(request: Request) -> JSONResponse:
        return await web(request).operation(request)

    async def describe(request: Request) -> JSONResponse:
        return JSONResponse(_OPENAPI)

    async def session_events(websocket: WebSocket) -> None:
        await web(websocket).session_events(websocket)

    async def agent_events(websocket: WebSocket) -> None:
        await web(websocket).agent_events(websocket)

    routes = [
        Route("/openapi.json", describe, methods=["GET"]),
        Route("/", lambda request: RedirectResponse("/pages/chat.html"), methods=["GET"]),
        Mount("/pages", StaticFiles(directory=PAGES), name="pages"),
        Route("/v1/{op}", operation, methods=["POST"]),
        WebSocketRoute("/v1/sessions/{channel_session_id}/events", session_events),
        WebSocketRoute("/v1/agents/{agent_id}/events", agent_events),
    ]
    return Starlette(routes=routes, lifespan=lifespan)
