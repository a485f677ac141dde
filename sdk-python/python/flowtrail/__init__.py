"""Flow Trail for Python: record why a multi-step decision pipeline chose its output.

    import flowtrail
    ft = flowtrail.Client()          # FLOWTRAIL_URL, FLOWTRAIL_API_KEY; or arguments
    with ft.flow("competitor_selection", input={"title": title}, tags={"seller": sid}) as flow:
        with flow.step("price_filter", kind="filter", input={"max_price": 80}) as step:
            for c in candidates:
                step.observe(c.id, "kept" if ok(c) else "rejected", score=c.score,
                             reasons=[("price_out_of_range", "9.99 < 22.50")],
                             attributes={"price": c.price})
            step.reasoning = "kept 0.5x-2x of the seller's price"
        flow.output = {"selected": best.id}

Recording is the Rust SDK's (``flowtrail-sdk``), through a native module: the same capture
policies, never-blocking sender with retries and spool, redaction and record/replay.
Recording never raises into the pipeline (problems are counted in ``stats()["sdk_errors"]``
and logged on the ``flowtrail`` logger); the only exceptions are :class:`ReplayMismatch` and
:class:`ReplayMissing` from ``Step.boundary`` in a replayed flow, :class:`ReplayError` from
``Client.replay`` when the recording cannot be fetched, and what ``boundary``'s own ``fn``
raises (or ``TypeError`` when it is not callable) — and in a replay, the exception a
recorded call raised (its own type when it can be made again, else :class:`ReplayedError`).

Every client is shut down at interpreter exit (``FLOWTRAIL_SHUTDOWN_TIMEOUT`` seconds, default
5), and restarted in a child after ``fork()`` (multiprocessing, gunicorn).
"""

from __future__ import annotations

import asyncio
import atexit
import contextvars
import functools
import inspect
import logging
import os
import sys
import threading
import time
import weakref
from typing import Any, Callable, Optional, Sequence, TypeVar

from . import _flowtrail
from ._flowtrail import (
    Flow,
    ReplayError,
    ReplayMismatch,
    ReplayMissing,
    ReplayedError,
    Step,
)
from .read import ReadClient, ReadError

__all__ = [
    "Client",
    "Flow",
    "Step",
    "ReplayError",
    "ReplayMismatch",
    "ReplayMissing",
    "ReplayedError",
    "ReadClient",
    "ReadError",
    "FULL",
    "COUNTS_ONLY",
    "full",
    "counts_only",
    "sampled",
    "current_flow",
    "current_step",
    "step",
    "shutdown_all",
    "aflush",
    "ashutdown",
]

__version__ = _flowtrail.__version__

#: Keep every candidate of a step.
FULL = "full"
#: Keep no candidate, only the exact counts and reason histogram.
COUNTS_ONLY = "counts_only"


def full() -> str:
    """The capture policy that keeps every candidate."""
    return FULL


def counts_only() -> str:
    """The capture policy that keeps only counts and the reason histogram."""
    return COUNTS_ONLY


def sampled(per_reason: int = 50) -> str:
    """The capture policy that keeps every kept or selected candidate and up to
    ``per_reason`` rejected candidates per reason code (the default, 50). Never raises: a
    ``per_reason`` that is not a whole number from 0 to 100,000 (``"x"``, NaN, -3, ``True``,
    1e30) is logged on the ``flowtrail`` logger and 50 is used; a fraction is rounded down.
    (A step keeps at most 100,000 observations in all.)"""
    try:
        if isinstance(per_reason, bool):
            raise TypeError(per_reason)
        count = int(per_reason)
        if not 0 <= count <= 100_000:
            raise ValueError(per_reason)
    except (TypeError, ValueError, OverflowError):
        logging.getLogger("flowtrail").warning(
            "flowtrail: sampled(per_reason=%r) is not a whole number from 0 to 100000: "
            "50 is used",
            per_reason,
        )
        count = 50
    return f"sampled:{count}"


_current_flow: contextvars.ContextVar[Optional[Flow]] = contextvars.ContextVar(
    "flowtrail_current_flow", default=None
)
_current_step: contextvars.ContextVar[Optional[Step]] = contextvars.ContextVar(
    "flowtrail_current_step", default=None
)
_flowtrail._set_context_vars(_current_flow, _current_step)


def current_flow() -> Optional[Flow]:
    """The flow whose ``with`` block this code runs in (per thread and asyncio task)."""
    return _current_flow.get()


def current_step() -> Optional[Step]:
    """The step whose ``with`` block this code runs in (per thread and asyncio task)."""
    return _current_step.get()


F = TypeVar("F", bound=Callable[..., Any])


def step(
    name: Any = None, kind: str = "custom", capture: Optional[str] = None
) -> Any:
    """A decorator for a function that is a step of the current flow:

        @flowtrail.step(kind="rank")
        def rank(candidates): ...

    Each call inside a flow's ``with`` block is recorded as a step named ``name`` (default:
    the function's name), failed if the function raises (the exception propagates). Outside
    a flow the function runs as it is. Works on ``async def`` functions, and on generators
    (sync or async: the step lasts until the generator is exhausted, or closed by its
    consumer — a ``break`` — which is not a failure). The step is the current step while
    the function's own code runs (``flowtrail.current_step().observe(...)``); between a
    generator's items the consumer's step is current. ``@flowtrail.step`` without
    parentheses works too.
    """

    def decorate(fn: F) -> F:
        # A callable without a __name__: a functools.partial (its function's name), an
        # object with __call__ (its class's name).
        step_name = (
            name
            or getattr(fn, "__name__", None)
            or getattr(getattr(fn, "func", None), "__name__", None)
            or type(fn).__name__
        )
        # An object whose __call__ is `async def` or a generator is one too.
        call = fn if inspect.isroutine(fn) else getattr(type(fn), "__call__", fn)
        # A generator's step is the current step only while its body runs: between items
        # the consumer's own step is current (its observations are its own), and a
        # generator closed by the event loop in another task leaves nothing behind.
        if inspect.isasyncgenfunction(fn) or inspect.isasyncgenfunction(call):

            @functools.wraps(fn)
            async def run_async_gen(*args: Any, **kwargs: Any) -> Any:
                flow = _current_flow.get()
                if flow is None:
                    async for item in fn(*args, **kwargs):
                        yield item
                    return
                step_ = flow.step(step_name, kind, capture=capture)
                agen = fn(*args, **kwargs)

                async def resume(method: Any, value: Any) -> Any:
                    token = _current_step.set(step_)
                    try:
                        return await method(value)
                    finally:
                        _current_step.reset(token)

                try:
                    item = await resume(agen.asend, None)
                    while True:
                        try:
                            sent = yield item
                        except GeneratorExit:
                            # Closed early by its consumer (a `break`, or the event loop at
                            # exit): not a failure.
                            step_.finish()
                            await agen.aclose()
                            return
                        except BaseException as error:  # thrown in by the consumer
                            item = await resume(agen.athrow, error)
                        else:
                            item = await resume(agen.asend, sent)
                except StopAsyncIteration:
                    step_.finish()
                except asyncio.CancelledError:
                    # A task the loop cancels as it ends: the generator did not fail.
                    step_.finish()
                    raise
                except BaseException as error:
                    step_.__exit__(type(error), error, error.__traceback__)
                    raise

            return run_async_gen  # type: ignore[return-value]

        if inspect.isgeneratorfunction(fn) or inspect.isgeneratorfunction(call):

            @functools.wraps(fn)
            def run_gen(*args: Any, **kwargs: Any) -> Any:
                flow = _current_flow.get()
                if flow is None:
                    return (yield from fn(*args, **kwargs))
                step_ = flow.step(step_name, kind, capture=capture)
                gen = fn(*args, **kwargs)

                def resume(method: Any, value: Any) -> Any:
                    token = _current_step.set(step_)
                    try:
                        return method(value)
                    finally:
                        _current_step.reset(token)

                try:
                    item = resume(gen.send, None)
                    while True:
                        try:
                            sent = yield item
                        except GeneratorExit:
                            # Closed early by its consumer (a `break`): not a failure.
                            step_.finish()
                            gen.close()
                            return
                        except BaseException as error:  # thrown in by the consumer
                            item = resume(gen.throw, error)
                        else:
                            item = resume(gen.send, sent)
                except StopIteration as stop:
                    step_.finish()
                    return stop.value
                except BaseException as error:
                    step_.__exit__(type(error), error, error.__traceback__)
                    raise

            return run_gen  # type: ignore[return-value]

        if inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(call):

            @functools.wraps(fn)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                flow = _current_flow.get()
                if flow is None:
                    return await fn(*args, **kwargs)
                with flow.step(step_name, kind, capture=capture):
                    return await fn(*args, **kwargs)

            return run_async  # type: ignore[return-value]

        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            flow = _current_flow.get()
            if flow is None:
                return fn(*args, **kwargs)
            with flow.step(step_name, kind, capture=capture):
                return fn(*args, **kwargs)

        return run  # type: ignore[return-value]

    if callable(name) and not isinstance(name, str):
        # `@flowtrail.step` without parentheses: `name` is the function itself.
        fn, name = name, None
        return decorate(fn)
    return decorate


# -- every client, for the exit and fork hooks --------------------------------------------

# Strong references: a client created in a function (`def main(): ft = Client()`) must still
# be flushed at exit; a client leaves the set when it is shut down.
_clients: "set[Client]" = set()
_clients_lock = threading.Lock()


class Client(_flowtrail.Client):
    """Sends flows to Flow Trail from a background thread (see the native class for the
    arguments: ``url``, ``api_key``, ``capture``, ``redact_fields``, ``mask``, ``spool_dir``,
    ``push_steps``, …). Every client is shut down at interpreter exit and restarted in a
    child after ``fork()``."""

    def __init__(
        self,
        url: Optional[str] = None,
        api_key: Optional[str] = None,
        *,
        capture: Optional[str] = None,
        redact_fields: Optional[Sequence[str]] = None,
        mask: Optional[Callable[[str, Any], Any]] = None,
        spool_dir: Optional[str] = None,
        spool_max_bytes: int = 268_435_456,
        push_steps: bool = False,
        queue_capacity: int = 1000,
        max_attempts: int = 8,
        request_timeout: float = 10.0,
        backoff_base: float = 0.2,
        sdk_version: Optional[str] = None,
    ) -> None:
        # The native class reads the arguments (in __new__); here the client is registered
        # for the exit and fork hooks.
        with _clients_lock:
            _clients.add(self)

    def shutdown(self, timeout: float = 5.0) -> bool:
        """Flushes, then stops the sender, within ``timeout`` seconds (the interpreter is
        released meanwhile); what is left goes to the spool or is counted as dropped. The
        exit hook does not shut this client down again."""
        with _clients_lock:
            _clients.discard(self)
        return super().shutdown(timeout)

    def flow(self, pipeline: Any, *, input: Any = None, tags: Any = None) -> Flow:
        """Starts recording a run of ``pipeline`` (see the native class). A flow still open
        at interpreter exit is sent as failed, with the exception that ended the program."""
        flow = super().flow(pipeline, input=input, tags=tags)
        _open_flows[flow] = time.monotonic()
        return flow

    def replay(self, flow_id: Any, pipeline: Any, *, input: Any = None, tags: Any = None,
               timeout: Any = None) -> Flow:
        """Starts a run of ``pipeline`` against the calls recorded in flow ``flow_id`` (see
        the native class)."""
        flow = super().replay(flow_id, pipeline, input=input, tags=tags, timeout=timeout)
        _open_flows[flow] = time.monotonic()
        return flow

    def __hash__(self) -> int:
        return id(self)

    def __eq__(self, other: object) -> bool:
        return self is other


def shutdown_all(timeout: Optional[float] = None) -> None:
    """Shuts every client down (what interpreter exit does), within ``timeout`` seconds in
    all (default ``FLOWTRAIL_SHUTDOWN_TIMEOUT``, else 5)."""
    if timeout is None:
        try:
            timeout = float(os.environ.get("FLOWTRAIL_SHUTDOWN_TIMEOUT", "5"))
        except ValueError:
            timeout = 5.0
    with _clients_lock:
        clients = list(_clients)
    for client in clients:
        try:
            client.shutdown(timeout / max(1, len(clients)))
        except Exception:  # noqa: BLE001 - exit must never raise
            pass


# Every flow started, weakly, with when it started: those still open at exit are sent as
# failed.
_open_flows: "weakref.WeakKeyDictionary[Flow, float]" = weakref.WeakKeyDictionary()
# The last exception no code caught (sys.excepthook), and when: what ended the program —
# unless a flow started after it (an interactive session goes on after an error).
_uncaught: "Optional[tuple[float, BaseException]]" = None
_previous_excepthook = sys.excepthook


def _excepthook(kind: Any, error: Any, traceback: Any) -> None:
    global _uncaught
    _uncaught = (time.monotonic(), error)
    _previous_excepthook(kind, error, traceback)


sys.excepthook = _excepthook


def _end_open_flows() -> None:
    """Sends every flow still open as failed (what leaving its block with an exception does),
    naming the uncaught exception that ended the program when there was one (not one shown
    before the flow started; `sys.exit` is no exception here). A flow already ended is left
    as it is."""
    # An interactive session goes on after an error: none of its errors ended it.
    interactive = hasattr(sys, "ps1") or sys.flags.interactive
    for flow, started in list(_open_flows.items()):
        error: Optional[BaseException] = None
        if interactive:
            pass
        elif _uncaught is not None and _uncaught[0] >= started:
            error = _uncaught[1]
        elif _uncaught is None:
            # Another sys.excepthook installed after ours (rich, Sentry): the interpreter
            # still sets sys.last_value for the exception that ended the program.
            error = getattr(sys, "last_value", None)
        if error is not None:
            said = str(error)
            reason = f"the process exited with {type(error).__name__}" + (
                f": {said}" if said else ""
            )
        else:
            reason = "the process exited (end of program or sys.exit) before the flow ended"
        try:
            flow.fail(reason)
        except Exception:  # noqa: BLE001 - exit must never raise
            pass


def _at_exit() -> None:
    _end_open_flows()
    shutdown_all()
    _flowtrail._finalizing()


def _after_fork_in_child() -> None:
    global _clients_lock
    # The lock may have been held by another thread at the fork: a new one.
    _clients_lock = threading.Lock()
    _flowtrail._reset_after_fork()
    for client in list(_clients):
        try:
            client._after_fork()
        except Exception:  # noqa: BLE001
            pass


class _ForkMarker:
    """Kept alive for `multiprocessing.util.register_after_fork`."""


_fork_marker = _ForkMarker()


def _in_multiprocessing_child(_marker: object) -> None:
    # A multiprocessing process started by fork ends with os._exit, past atexit, after
    # running its finalizers — registered here, after multiprocessing cleared the parent's.
    import multiprocessing.util as mp_util

    mp_util.Finalize(None, shutdown_all, exitpriority=100)


atexit.register(_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
    import multiprocessing.util as _mp_util

    _mp_util.register_after_fork(_fork_marker, _in_multiprocessing_child)


async def aflush(client: Client, timeout: float = 5.0) -> bool:
    """``client.flush(timeout)`` without blocking the event loop (run in a thread)."""
    return await asyncio.get_running_loop().run_in_executor(None, client.flush, timeout)


async def ashutdown(client: Client, timeout: float = 5.0) -> bool:
    """``client.shutdown(timeout)`` without blocking the event loop (run in a thread)."""
    return await asyncio.get_running_loop().run_in_executor(None, client.shutdown, timeout)
