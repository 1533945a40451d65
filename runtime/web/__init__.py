"""The HTTP and WebSocket gateway (``cx web``) and its access tokens (``cx token``)."""

from runtime.web.app import WebOptions, create_app
from runtime.web.command import run_web, token_command

__all__ = ["WebOptions", "create_app", "run_web", "token_command"]
