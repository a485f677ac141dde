"""Type stubs of the native module (the Rust SDK through PyO3)."""

from typing import Any, Callable, Dict, Iterable, Mapping, Optional, Sequence, Tuple, TypeVar, Union
from contextvars import ContextVar
from types import TracebackType

__version__: str

_Reason = Union[str, Tuple[str, Optional[str]], Mapping[str, Any]]
T = TypeVar("T")

class ReplayError(Exception):
    """A replayed flow's recording does not fit the run."""

class ReplayMismatch(ReplayError):
    """A boundary was called with another input than the recorded call."""

class ReplayMissing(ReplayError):
    """No recorded call of the boundary is left, or its output does not read back."""

class ReplayedError(ReplayError):
    """A recorded call's exception that cannot be raised again as its own type."""

class Client:
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
    ) -> None: ...
    @property
    def enabled(self) -> bool: ...
    @property
    def url(self) -> str: ...
    def flow(
        self,
        pipeline: str,
        *,
        input: Any = None,
        tags: Optional[Mapping[str, Any]] = None,
    ) -> Flow: ...
    def replay(
        self,
        flow_id: str,
        pipeline: str,
        *,
        input: Any = None,
        tags: Optional[Mapping[str, Any]] = None,
        timeout: float = 10.0,
    ) -> Flow: ...
    def flush(self, timeout: float = 5.0) -> bool: ...
    def shutdown(self, timeout: float = 5.0) -> bool: ...
    def stats(self) -> Dict[str, int]: ...
    def _after_fork(self) -> None: ...

class Flow:
    @property
    def id(self) -> str: ...
    output: Any
    """What the flow decided (read back as JSON values: dicts, lists, text, numbers)."""
    input: Any
    """What the flow was asked (read back as JSON values)."""
    @property
    def tags(self) -> Dict[str, str]: ...
    def tag(self, key: Any, value: Any) -> None: ...
    def step(
        self,
        name: str,
        kind: Optional[str] = None,
        *,
        input: Any = None,
        capture: Optional[str] = None,
    ) -> Step: ...
    def succeed(self, output: Any = None) -> None: ...
    def fail(self, error: Any) -> None: ...
    def __enter__(self) -> Flow: ...
    def __exit__(
        self,
        exc_type: Optional[type] = None,
        exc: Optional[BaseException] = None,
        traceback: Optional[TracebackType] = None,
    ) -> bool: ...

class Step:
    @property
    def seq(self) -> Optional[int]: ...
    reasoning: Any
    """The step's explanation (set: any value, kept as text; read: the text or None)."""
    input: Any
    output: Any
    candidates_in: Optional[int]
    """Set when not every candidate is observed; None until set."""
    candidates_out: Optional[int]
    def observe(
        self,
        candidate_id: Any,
        verdict: str,
        *,
        score: Optional[float] = None,
        reasons: Optional[Iterable[_Reason]] = None,
        attributes: Optional[Mapping[str, Any]] = None,
    ) -> None: ...
    def boundary(self, name: str, input: Any, fn: Callable[[], T]) -> T: ...
    def finish(self) -> None: ...
    def fail(self, reasoning: Any) -> None: ...
    def __enter__(self) -> Step: ...
    def __exit__(
        self,
        exc_type: Optional[type] = None,
        exc: Optional[BaseException] = None,
        traceback: Optional[TracebackType] = None,
    ) -> bool: ...

def _set_context_vars(flow: ContextVar[Any], step: ContextVar[Any]) -> None: ...
def _finalizing() -> None: ...
def _reset_after_fork() -> None: ...
