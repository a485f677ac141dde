"""A small read client for scripts and notebooks: the query API as plain dicts, and as
pandas DataFrames when pandas is installed.

Only the standard library is used (``urllib``). Unlike recording, reading raises: a failed
request raises :class:`ReadError` with the API's stable error code (CONTRACT.md), so a script
does not go on with an answer it did not get.

    >>> import flowtrail
    >>> read = flowtrail.ReadClient()          # FLOWTRAIL_URL, FLOWTRAIL_API_KEY
    >>> flows = read.flows(pipeline="competitor_selection", status="failed", limit=20)
    >>> read.journey(flows[0]["id"], "B0PHONECASE")["steps"]
"""

from __future__ import annotations

import http.client
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

__all__ = ["ReadClient", "ReadError"]

_Tags = Union[Mapping[str, str], Iterable[Tuple[str, str]], None]


class ReadError(Exception):
    """A read the API refused or that did not reach it.

    Attributes:
        status: the HTTP status (0 when the server was not reached).
        code: the API's stable error code (``not_found``, ``validation_failed``,
            ``unauthorized``, …), or, from the client itself, ``unreachable``,
            ``bad_response``, ``invalid_url`` (also a key that cannot be sent) or
            ``invalid_argument``.
        message: what the server (or the network) said.
        field: the parameter at fault, when the API names one.
    """

    def __init__(self, status: int, code: str, message: str, field: Optional[str] = None):
        super().__init__(f"{status} {code}: {message}" + (f" ({field})" if field else ""))
        self.status = status
        self.code = code
        self.message = message
        self.field = field


class ReadClient:
    """Reads flows from a Flow Trail server.

    Args:
        url: the server's base URL; default ``FLOWTRAIL_URL``, else ``http://127.0.0.1:3000``.
        api_key: a key of scope ``read`` or ``all``; default ``FLOWTRAIL_API_KEY``.
        timeout: seconds per request.
    """

    def __init__(
        self,
        url: Optional[str] = None,
        api_key: Optional[str] = None,
        timeout: float = 10.0,
    ) -> None:
        self.url = str(url or os.environ.get("FLOWTRAIL_URL") or "http://127.0.0.1:3000")
        self.url = self.url.strip().rstrip("/")
        key = api_key if api_key is not None else os.environ.get("FLOWTRAIL_API_KEY")
        # A key read from a file ends with a newline: white space around it is not the key.
        self.api_key = str(key).strip() if key is not None else None
        self.timeout = _number("timeout", timeout)

    # -- the API as dicts ------------------------------------------------------------------

    def flows(
        self,
        pipeline: Optional[str] = None,
        status: Optional[str] = None,
        tags: _Tags = None,
        since: Optional[str] = None,
        until: Optional[str] = None,
        q: Optional[str] = None,
        step_kind: Optional[str] = None,
        min_eliminated: Optional[float] = None,
        step: Optional[str] = None,
        reason: Optional[str] = None,
        limit: int = 50,
        max_flows: Optional[int] = None,
    ) -> List[Dict[str, Any]]:
        """Flow summaries, newest first, with the flows list's filters (CONTRACT.md).

        ``tags``: ``{"seller": "s-42"}`` or pairs (each one a ``tag=key:value`` filter).
        ``since``/``until``: RFC 3339 text. ``step``/``reason``: a step (named ``step``,
        when given) counted this reason code. ``limit``: flows per page (≤ 500).
        ``max_flows``: follow ``next_cursor`` until this many are read; ``None`` reads one
        page. Raises :class:`ReadError`.
        """
        params: List[Tuple[str, str]] = []
        for name, value in (
            ("pipeline", pipeline),
            ("status", status),
            ("since", since),
            ("until", until),
            ("q", q),
            ("step_kind", step_kind),
            ("min_eliminated", min_eliminated),
            ("step", step),
            ("reason", reason),
        ):
            if value is not None:
                params.append((name, str(value)))
        if isinstance(tags, (str, bytes)):
            raise ReadError(0, "invalid_argument", "tags is a dict or (key, value) pairs")
        pairs = tags.items() if isinstance(tags, Mapping) else (tags or [])
        try:
            for key, value in pairs:
                params.append(("tag", f"{_tag_key(str(key))}:{value}"))
        except (TypeError, ValueError):
            raise ReadError(0, "invalid_argument", "tags is a dict or (key, value) pairs") from None
        limit = _whole("limit", limit)
        if not 1 <= limit <= 500:
            raise ReadError(0, "invalid_argument", f"limit is from 1 to 500, not {limit}")
        params.append(("limit", str(limit)))
        if max_flows is not None:
            max_flows = _whole("max_flows", max_flows)
        wanted = max_flows if max_flows is not None else limit
        flows: List[Dict[str, Any]] = []
        cursor: Optional[str] = None
        while True:
            page = self._get("/api/v1/flows", params + ([("cursor", cursor)] if cursor else []))
            flows.extend(page.get("flows", []))
            cursor = page.get("next_cursor")
            if not cursor or len(flows) >= wanted or max_flows is None:
                return flows[:wanted] if max_flows is not None else flows

    def flow(self, flow_id: str, version: Optional[int] = None) -> Dict[str, Any]:
        """One flow with its steps (no observations). Raises :class:`ReadError`
        (``not_found`` when the team has no such flow, or — with ``version`` — when the flow
        is stored at another version: the server keeps only the latest)."""
        flow = self._get(f"/api/v1/flows/{_segment(flow_id)}", [])
        if version is not None and flow.get("version") != _whole("version", version):
            raise ReadError(
                404,
                "not_found",
                f"flow {flow_id} is stored at version {flow.get('version')}, not {version}",
            )
        return flow

    def observations(
        self, flow_id: str, seq: int, version: Optional[int] = None
    ) -> List[Dict[str, Any]]:
        """The observations stored for step ``seq`` of a flow. Raises :class:`ReadError`."""
        params = [("version", str(_whole("version", version)))] if version is not None else []
        answer = self._get(
            f"/api/v1/flows/{_segment(flow_id)}/steps/{_whole('seq', seq)}/observations", params
        )
        return answer.get("observations", [])

    def journey(self, flow_id: str, candidate_id: str) -> Dict[str, Any]:
        """A candidate's journey through the flow's steps. Raises :class:`ReadError`."""
        return self._get(
            f"/api/v1/flows/{_segment(flow_id)}/candidates/{_segment(candidate_id)}", []
        )

    def diff(self, a: str, b: str) -> Dict[str, Any]:
        """Per step, the candidates added, removed and whose verdict changed from flow ``a``
        to flow ``b``. Raises :class:`ReadError`."""
        return self._get(f"/api/v1/flows/{_segment(a)}/diff/{_segment(b)}", [])

    # -- the same as DataFrames ------------------------------------------------------------

    def flows_df(self, **filters: Any) -> "Any":
        """:meth:`flows` as a pandas DataFrame, one row per flow (``tags`` flattened to
        ``tag.<key>`` columns). Raises ``ImportError`` without pandas."""
        pandas = _pandas()
        rows = []
        for flow in self.flows(**filters):
            row = {k: v for k, v in flow.items() if k != "tags"}
            for key, value in (flow.get("tags") or {}).items():
                row[f"tag.{key}"] = value
            rows.append(row)
        # No flows: the summary's columns all the same, so code that selects them still works.
        return pandas.DataFrame(rows, columns=None if rows else _FLOW_COLUMNS)

    def steps_df(self, flow_id: str, version: Optional[int] = None) -> "Any":
        """The flow's steps as a DataFrame, one row per step. Raises ``ImportError`` without
        pandas, :class:`ReadError`."""
        return _pandas().DataFrame(self.flow(flow_id, version).get("steps", []))

    def observations_df(self, flow_id: str, seq: int, version: Optional[int] = None) -> "Any":
        """A step's observations as a DataFrame: ``candidate_id``, ``verdict``, ``score``,
        ``reason_codes`` (a list), ``reasons`` (as stored) and one ``attr.<key>`` column per
        attribute. Raises ``ImportError`` without pandas, :class:`ReadError`."""
        rows = []
        for observation in self.observations(flow_id, seq, version):
            row = {k: v for k, v in observation.items() if k != "attributes"}
            row["reason_codes"] = [r.get("code") for r in observation.get("reasons") or []]
            for key, value in (observation.get("attributes") or {}).items():
                row[f"attr.{key}"] = value
            rows.append(row)
        return _pandas().DataFrame(rows)

    def journey_df(self, flow_id: str, candidate_id: str) -> "Any":
        """:meth:`journey`'s steps as a DataFrame, one row per step. Raises ``ImportError``
        without pandas, :class:`ReadError`."""
        return _pandas().DataFrame(self.journey(flow_id, candidate_id).get("steps", []))

    def diff_df(self, a: str, b: str) -> "Any":
        """:meth:`diff`'s steps as a DataFrame, one row per step. Raises ``ImportError``
        without pandas, :class:`ReadError`."""
        return _pandas().DataFrame(self.diff(a, b).get("steps", []))

    # -- plumbing --------------------------------------------------------------------------

    def _get(self, path: str, params: Sequence[Tuple[str, str]]) -> Dict[str, Any]:
        # urllib would also open file:// and ftp:// addresses: only HTTP(S) is the API.
        if not self.url.lower().startswith(("http://", "https://")):
            raise ReadError(0, "invalid_url", f"{self.url!r} is not an http(s):// address")
        try:
            url = self.url + path
            if params:
                url += "?" + urllib.parse.urlencode(list(params))
        except UnicodeError as error:
            raise ReadError(0, "invalid_argument", f"not sendable as UTF-8: {error}") from None
        try:
            request = urllib.request.Request(url, headers={"Accept": "application/json"})
            if self.api_key:
                request.add_header("Authorization", f"Bearer {self.api_key}")
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                body = response.read()
        except urllib.error.HTTPError as error:
            raise _error_of(error.code, error.read()) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
            # HTTPException: an answer that is not HTTP (BadStatusLine, IncompleteRead, ...).
            raise ReadError(0, "unreachable", f"{self.url}: {error!r}") from None
        except UnicodeError as error:
            # A lone surrogate in a filter or an id cannot be sent.
            raise ReadError(0, "invalid_argument", f"not sendable as UTF-8: {error}") from None
        except ValueError as error:
            raise ReadError(0, "invalid_url", f"{self.url!r}: {error}") from None
        try:
            answer = json.loads(body)
        except ValueError:
            raise ReadError(200, "bad_response", "the answer is not JSON") from None
        if not isinstance(answer, dict):
            raise ReadError(200, "bad_response", "the answer is not a JSON object")
        return answer


def _whole(name: str, value: Any) -> int:
    """A whole number from 0 up, or :class:`ReadError` (``invalid_argument``)."""
    try:
        if isinstance(value, bool):
            raise TypeError
        number = int(value)
        if number < 0 or number != float(value):
            raise ValueError
        return number
    except (TypeError, ValueError, OverflowError):
        raise ReadError(0, "invalid_argument", f"{name} is a whole number from 0 up, not {value!r}") from None


def _number(name: str, value: Any) -> float:
    """A number above 0, or :class:`ReadError` (``invalid_argument``)."""
    try:
        number = float(value)
        if not number > 0 or number == float("inf"):
            raise ValueError
        return number
    except (TypeError, ValueError):
        raise ReadError(0, "invalid_argument", f"{name} is a number of seconds above 0, not {value!r}") from None


# The columns of a flow summary (GET /api/v1/flows), tags aside.
_FLOW_COLUMNS = [
    "id", "version", "pipeline", "status", "started_at", "ended_at", "error", "step_count",
    "ingested_at", "largest_elimination",
]


def _tag_key(key: str) -> str:
    """A tag key as the ``tag=key:value`` filter writes it: ``\\`` and ``:`` escaped with a
    backslash (``k8s:ns`` → ``k8s\\:ns``), so the first bare ``:`` ends the key."""
    return key.replace("\\", "\\\\").replace(":", "\\:")


def _segment(text: str) -> str:
    """``text`` as one path segment (a candidate id may hold ``/`` or ``?``); text that
    cannot be UTF-8 (a lone surrogate) is :class:`ReadError` ``invalid_argument``."""
    try:
        return urllib.parse.quote(str(text), safe="")
    except UnicodeError as error:
        raise ReadError(0, "invalid_argument", f"not sendable as UTF-8: {error}") from None


def _error_of(status: int, body: bytes) -> ReadError:
    try:
        error = json.loads(body)["error"]
        return ReadError(status, str(error["code"]), str(error["message"]), error.get("field"))
    except (ValueError, KeyError, TypeError):
        return ReadError(status, "http_error", body[:200].decode("utf-8", "replace"))


def _pandas() -> Any:
    try:
        import pandas  # type: ignore[import-not-found]
    except ImportError:
        raise ImportError(
            "DataFrames need pandas: pip install pandas (or flowtrail[pandas])"
        ) from None
    return pandas
