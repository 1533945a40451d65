"""The asyncio client of the engine (:class:`AsyncGateway`)."""

from runtime.aio.client import OPERATIONS, AioLimits, AsyncGateway

__all__ = ["OPERATIONS", "AioLimits", "AsyncGateway"]
