//! `flowtrail._flowtrail`: the Rust SDK ([`flowtrail_sdk`]) as a Python extension module.
//! The Python package (`sdk-python/python/flowtrail`) re-exports it and adds decorators, the
//! current flow and step (`contextvars`), the exit and fork hooks, and the read client.
//!
//! Rules (the Rust SDK's, kept across the language boundary):
//! - recording never raises into the pipeline: a value that cannot be read is recorded as
//!   text, an unknown kind or verdict is counted in `stats()["sdk_errors"]` and logged on the
//!   `flowtrail` logger; the only exceptions are [`ReplayMismatch`] and [`ReplayMissing`],
//!   raised by `Step.boundary` in a replayed flow whose recording does not fit;
//! - sending happens on the sender's own thread; `flush` and `shutdown` wait with the
//!   interpreter released (other Python threads and an asyncio loop keep running);
//! - no Python code runs while this module holds one of its locks.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use flowtrail_sdk as sdk;
use flowtrail_types::{FlowRecord, StepRecord};
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::sync::{MutexExt, PyOnceLock};
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use serde_json::{Map, Value};

create_exception!(
    flowtrail,
    ReplayError,
    PyException,
    "A replayed flow's recording does not fit the run (the only error recording raises)."
);
create_exception!(
    flowtrail,
    ReplayMismatch,
    ReplayError,
    "A boundary was called with another input than the recorded call."
);
create_exception!(
    flowtrail,
    ReplayMissing,
    ReplayError,
    "A boundary was called more often than the recording holds, or a recorded output does \
     not read back."
);
create_exception!(
    flowtrail,
    ReplayedError,
    ReplayError,
    "A replayed boundary whose recorded call failed with an exception that cannot be raised \
     again as itself (its type is not importable, or not built from a message): the message \
     says which type and what it said."
);

/// Errors recording swallowed (bad kinds, verdicts, values), for `stats()["sdk_errors"]`.
static SDK_ERRORS: AtomicU64 = AtomicU64::new(0);
/// Set once the interpreter is exiting: a Python mask is no longer called (values it would
/// have seen are replaced by `"[redacted]"`, failing closed).
static FINALIZING: AtomicBool = AtomicBool::new(false);
/// Calls of a Python mask under way (on any thread). At exit [`_finalizing`] sets
/// [`FINALIZING`], then waits for this to reach zero: a sender thread still inside the mask
/// when the interpreter finalizes would be ended by CPython (`pthread_exit`) through Rust
/// frames, which aborts the process. Both are `SeqCst`: a mask call that saw `FINALIZING`
/// unset is counted here before `_finalizing` looks.
static MASKS_RUNNING: AtomicUsize = AtomicUsize::new(0);
/// The `contextvars.ContextVar`s of the current flow and step (set by the package).
static CURRENT: PyOnceLock<(Py<PyAny>, Py<PyAny>)> = PyOnceLock::new();

/// Scores are doubles below 2^53 in magnitude (the server's bound): an integer beyond it
/// cannot be a score exactly.
const MAX_EXACT_SCORE: f64 = flowtrail_types::limits::MAX_COUNT as f64;

/// Deepest nesting converted from Python; deeper values are recorded as `"<too deep>"`.
const MAX_DEPTH: usize = 64;

/// Counts and logs a problem recording swallowed.
fn report(py: Python<'_>, message: &str) {
    SDK_ERRORS.fetch_add(1, Ordering::Relaxed);
    // The same message again (an unknown verdict in a loop of 5,000 candidates) is logged
    // the 1st, 10th, 100th, … time, with its count: every one is still counted above.
    let seen = {
        let mut reported = REPORTED
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let reported = reported.get_or_insert_with(HashMap::new);
        if reported.len() >= 10_000 {
            reported.clear();
        }
        let seen = reported.entry(message.to_string()).or_insert(0);
        *seen += 1;
        *seen
    };
    let mut power = 1u64;
    while power < seen {
        power = power.saturating_mul(10);
    }
    if power != seen {
        return;
    }
    let text = if seen == 1 {
        message.to_string()
    } else {
        format!("{message} (the same {seen} times so far)")
    };
    let logged = py.import("logging").and_then(|logging| {
        logging
            .call_method1("getLogger", ("flowtrail",))?
            .call_method1("warning", ("%s", text))
    });
    drop(logged);
}

/// `module.QualifiedName` of an exception's type (`builtins.TimeoutError`).
fn qualified_type_name(py: Python<'_>, error: &PyErr) -> String {
    let kind = error.get_type(py);
    let module = kind
        .module()
        .map(|m| lossy(&m))
        .unwrap_or_else(|_| "builtins".into());
    let name = kind
        .qualname()
        .map(|n| lossy(&n))
        .unwrap_or_else(|_| "Exception".into());
    format!("{module}.{name}")
}

/// The exception a replayed boundary raises for a recorded failure: its own type, made from
/// its message, when the type's module is already imported (`sys.modules`: a recording never
/// makes this process import anything) and the type is an exception; else [`ReplayedError`]
/// naming it.
fn recorded_exception(py: Python<'_>, error: &sdk::BoundaryError) -> PyErr {
    let again = || -> PyResult<PyErr> {
        let (module, qualname) = error
            .kind
            .rsplit_once('.')
            .unwrap_or(("builtins", &error.kind));
        // A nested class (`Outer.Inner`): the module is the longest importable prefix.
        let (mut module, mut path) = (module.to_string(), vec![qualname.to_string()]);
        // Only a module already imported: a recording (anyone with an ingest key can write
        // one) must not make the replaying process import, and so run, a module of its
        // choosing.
        let modules = py.import("sys")?.getattr("modules")?;
        let found = loop {
            match modules.get_item(module.as_str()) {
                Ok(found) => break found,
                Err(_) => match module.rsplit_once('.') {
                    Some((outer, inner)) => {
                        path.insert(0, inner.to_string());
                        module = outer.to_string();
                    }
                    None => return Err(ReplayedError::new_err("")),
                },
            }
        };
        let mut kind = found;
        for part in path.iter().flat_map(|p| p.split('.')) {
            kind = kind.getattr(part)?;
        }
        let base = py.get_type::<pyo3::exceptions::PyBaseException>();
        if !kind.is_instance_of::<pyo3::types::PyType>()
            || !kind.cast::<pyo3::types::PyType>()?.is_subclass(&base)?
        {
            return Err(ReplayedError::new_err(""));
        }
        Ok(PyErr::from_value(kind.call1((error.message.as_str(),))?))
    };
    again().unwrap_or_else(|_| {
        ReplayedError::new_err(format!(
            "the recorded call raised {}: {}",
            error.kind, error.message
        ))
    })
}

/// How many times each message [`report`] was given (cleared past 10,000 messages).
static REPORTED: Mutex<Option<HashMap<String, u64>>> = Mutex::new(None);

/// Logs on the `flowtrail` logger (warning level) what the client's sender had to tell: flows
/// refused, changed to fit the server's limits, or lost ([`sdk::Client::take_notices`]).
/// Not counted in `sdk_errors`: the client's `stats()` count these flows.
fn log_notices(py: Python<'_>, client: &sdk::Client) {
    let notices = client.take_notices();
    if notices.is_empty() {
        return;
    }
    let Ok(logger) = py
        .import("logging")
        .and_then(|logging| logging.call_method1("getLogger", ("flowtrail",)))
    else {
        return;
    };
    for notice in notices {
        drop(logger.call_method1("warning", ("%s", notice)));
    }
}

/// A Python value as JSON: `None`, booleans, integers (beyond 64 bits: their text), finite
/// floats (NaN and infinities: their text, `"NaN"`, `"Infinity"`), strings, mappings (keys as text), lists, tuples and
/// sets, NumPy scalars and arrays (as their Python values), dates and times (ISO 8601); anything
/// else as its `str()`. Never fails.
fn to_json(value: &Bound<'_, PyAny>, depth: usize) -> Value {
    if depth > MAX_DEPTH {
        return Value::String("<too deep>".into());
    }
    if value.is_none() {
        return Value::Null;
    }
    if let Ok(flag) = value.cast::<PyBool>() {
        return Value::Bool(flag.is_true());
    }
    if value.is_instance_of::<PyInt>() {
        if let Ok(n) = value.extract::<i64>() {
            return Value::from(n);
        }
        if let Ok(n) = value.extract::<u64>() {
            return Value::from(n);
        }
        return Value::String(text_of(value));
    }
    if let Ok(float) = value.cast::<PyFloat>() {
        return float_json(float.value());
    }
    if let Ok(text) = value.cast::<PyString>() {
        return Value::String(lossy(text));
    }
    if let Ok(dict) = value.cast::<PyDict>() {
        let mut members = Map::with_capacity(dict.len());
        for (key, member) in dict.iter() {
            let key = match key.cast::<PyString>() {
                Ok(text) => lossy(text),
                Err(_) => text_of(&key),
            };
            members.insert(key, to_json(&member, depth + 1));
        }
        return Value::Object(members);
    }
    if (value.is_instance_of::<PyList>() || value.is_instance_of::<PyTuple>())
        && let Ok(items) = value.try_iter()
    {
        return Value::Array(
            items
                .flatten()
                .map(|item| to_json(&item, depth + 1))
                .collect(),
        );
    }
    if let Ok(text) = value.extract::<String>() {
        return Value::String(text);
    }
    // NumPy scalars (`numpy.int64`, `numpy.float32`, `numpy.bool_`) and arrays: as the
    // Python values `item()` / `tolist()` give.
    if value.hasattr("dtype").unwrap_or(false) {
        for method in ["tolist", "item"] {
            if let Ok(plain) = value.call_method0(method)
                && !plain.is(value)
            {
                return to_json(&plain, depth + 1);
            }
        }
    }
    // Dates and times (`datetime`, `date`, `time`, pandas' `Timestamp`): ISO 8601.
    if let Ok(iso) = value.call_method0("isoformat")
        && let Ok(iso) = iso.cast::<PyString>()
    {
        return Value::String(lossy(iso));
    }
    // Sets and other iterables of plain values, dataclasses, datetimes, decimals: as text
    // unless they iterate (a set, a frozenset).
    if (value.is_instance_of::<pyo3::types::PySet>()
        || value.is_instance_of::<pyo3::types::PyFrozenSet>())
        && let Ok(items) = value.try_iter()
    {
        return Value::Array(
            items
                .flatten()
                .map(|item| to_json(&item, depth + 1))
                .collect(),
        );
    }
    Value::String(text_of(value))
}

/// A float as JSON: finite ones as numbers; NaN and infinities (JSON has neither) as the
/// text `"NaN"`, `"Infinity"`, `"-Infinity"` rather than lost.
fn float_json(value: f64) -> Value {
    match serde_json::Number::from_f64(value) {
        Some(number) => Value::Number(number),
        None if value.is_nan() => Value::String("NaN".into()),
        None if value > 0.0 => Value::String("Infinity".into()),
        None => Value::String("-Infinity".into()),
    }
}

/// A Python value as text: a `str` as it is (lone surrogates replaced), anything else by
/// `str()`.
fn text(value: &Bound<'_, PyAny>) -> String {
    match value.cast::<PyString>() {
        Ok(text) => lossy(text),
        Err(_) => text_of(value),
    }
}

/// A `str` as Rust text, each lone surrogate (not UTF-8) replaced by one U+FFFD.
fn lossy(text: &Bound<'_, PyString>) -> String {
    if let Ok(text) = text.extract::<String>() {
        return text;
    }
    let units: Option<Vec<u16>> = text
        .call_method1("encode", ("utf-16-le", "surrogatepass"))
        .ok()
        .and_then(|bytes| bytes.extract::<Vec<u8>>().ok())
        .map(|bytes| {
            bytes
                .chunks_exact(2)
                .map(|pair| u16::from_le_bytes([pair[0], pair[1]]))
                .collect()
        });
    match units {
        Some(units) => String::from_utf16_lossy(&units),
        None => text.to_string_lossy().into_owned(),
    }
}

/// A number from Python (`int`, `float`, or text that reads as one); `None` otherwise.
fn number(value: &Bound<'_, PyAny>) -> Option<f64> {
    if value.is_none() || value.is_instance_of::<PyBool>() {
        return None;
    }
    if let Ok(n) = value.extract::<f64>() {
        return Some(n);
    }
    text(value).trim().parse::<f64>().ok()
}

/// `str(value)`, or a placeholder when even that fails.
fn text_of(value: &Bound<'_, PyAny>) -> String {
    value
        .str()
        .map(|text| lossy(&text))
        .unwrap_or_else(|_| "<unprintable>".into())
}

/// JSON as Python values (`dict`, `list`, `str`, `int`, `float`, `bool`, `None`).
fn to_python<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        Value::Null => py.None().into_bound(py),
        Value::Bool(flag) => PyBool::new(py, *flag).to_owned().into_any(),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.into_pyobject(py)?.into_any(),
            (_, Some(u), _) => u.into_pyobject(py)?.into_any(),
            (_, _, Some(f)) => f.into_pyobject(py)?.into_any(),
            _ => py.None().into_bound(py),
        },
        Value::String(text) => PyString::new(py, text).into_any(),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(to_python(py, item)?)?;
            }
            list.into_any()
        }
        Value::Object(members) => {
            let dict = PyDict::new(py);
            for (key, member) in members {
                dict.set_item(key, to_python(py, member)?)?;
            }
            dict.into_any()
        }
    })
}

/// A capture policy from Python: `None` (the client's), `"full"`, `"counts_only"`,
/// `"sampled"` or `"sampled:N"` (N rejected candidates kept per reason).
fn capture_policy(
    py: Python<'_>,
    value: Option<&Bound<'_, PyAny>>,
    fallback: &str,
) -> Option<sdk::CapturePolicy> {
    let value = value.filter(|v| !v.is_none())?;
    let text = match value.extract::<String>() {
        Ok(text) => text,
        Err(_) => {
            report(
                py,
                &format!(
                    "capture must be \"full\", \"counts_only\" or flowtrail.sampled(per_reason=N): \
                     {fallback}"
                ),
            );
            return None;
        }
    };
    let policy = match text.trim() {
        "full" => Some(sdk::CapturePolicy::Full),
        "counts_only" => Some(sdk::CapturePolicy::CountsOnly),
        "sampled" => Some(sdk::CapturePolicy::default()),
        other => other
            .strip_prefix("sampled:")
            .and_then(|n| n.trim().parse::<usize>().ok())
            .map(|n| sdk::CapturePolicy::Sampled {
                rejected_per_reason: n,
            }),
    };
    if policy.is_none() {
        report(py, &format!("unknown capture policy {text:?}: {fallback}"));
    }
    policy
}

/// A step kind from Python text; an unknown one is `custom` (and reported).
fn step_kind(py: Python<'_>, kind: &str) -> sdk::StepKind {
    sdk::StepKind::parse(kind).unwrap_or_else(|| {
        report(
            py,
            &format!("unknown step kind {kind:?}: recorded as custom"),
        );
        sdk::StepKind::Custom
    })
}

/// The reasons of an observation: `(code, text)` pairs, `{"code": …, "text": …}` mappings or
/// bare codes in a list, or one mapping (a reason with `"code"`, else codes to texts); a code
/// or text that is not a `str` is taken by `str()`; a pair of more than two items keeps two
/// (reported). What cannot be read
/// (not an iterable, an iterator that raises, a mapping without `"code"`) is reported, and the
/// reasons read until then are kept.
fn reasons_of(py: Python<'_>, reasons: &Bound<'_, PyAny>) -> Vec<(String, Option<String>)> {
    if let Ok(code) = reasons.cast::<PyString>() {
        return vec![(lossy(code), None)];
    }
    let optional_text =
        |value: Option<Bound<'_, PyAny>>| value.filter(|v| !v.is_none()).map(|v| text(&v));
    // One mapping: a reason (`{"code": …, "text": …}`), or codes to texts.
    if let Ok(dict) = reasons.cast::<PyDict>() {
        if let Some(code) = dict.get_item("code").ok().flatten() {
            return vec![(
                text(&code),
                optional_text(dict.get_item("text").ok().flatten()),
            )];
        }
        return dict
            .iter()
            .map(|(code, reason)| (text(&code), optional_text(Some(reason))))
            .collect();
    }
    let Ok(items) = reasons.try_iter() else {
        report(py, "reasons must be a list of (code, text) pairs");
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in items {
        let item = match item {
            Ok(item) => item,
            Err(error) => {
                let kind = error
                    .get_type(py)
                    .name()
                    .map(|name| name.to_string())
                    .unwrap_or_default();
                report(
                    py,
                    &format!("reading the reasons raised {kind}: the rest are left out"),
                );
                break;
            }
        };
        // Cheapest checks first.
        if let Ok(code) = item.cast::<PyString>() {
            out.push((lossy(code), None));
        } else if item.is_instance_of::<PyTuple>() || item.is_instance_of::<PyList>() {
            let parts: Vec<Bound<'_, PyAny>> = item
                .try_iter()
                .map(|parts| parts.flatten().collect())
                .unwrap_or_default();
            match parts.as_slice() {
                [] => report(py, "an empty reason pair is left out"),
                [code] => out.push((text(code), None)),
                [code, reason, rest @ ..] => {
                    if !rest.is_empty() {
                        report(
                            py,
                            &format!(
                                "a reason is (code, text): {} items given, the rest left out",
                                parts.len()
                            ),
                        );
                    }
                    out.push((text(code), optional_text(Some(reason.clone()))));
                }
            }
        } else if let Ok(dict) = item.cast::<PyDict>() {
            match dict
                .get_item("code")
                .ok()
                .flatten()
                .filter(|c| !c.is_none())
            {
                Some(code) => out.push((
                    text(&code),
                    optional_text(dict.get_item("text").ok().flatten()),
                )),
                None => report(py, "a reason mapping has no \"code\""),
            }
        } else {
            // A bare code of another type (an enum member, a number).
            out.push((text(&item), None));
        }
    }
    out
}

/// Sends flows to Flow Trail from a background thread. Arguments (all optional): `url`,
/// `api_key` (default `FLOWTRAIL_URL`, `FLOWTRAIL_API_KEY`), `capture` (`"full"`,
/// `"counts_only"`, `flowtrail.sampled(per_reason=N)`; default sampled, 50 per reason),
/// `redact_fields` (object keys masked at any depth, without case; `"tags"`, `"attributes"`,
/// `"reasons"` mask every tag value, attribute value and reason text), `mask` (a callable
/// `mask(key, value) -> value` run on every value before anything leaves the process;
/// names — pipeline, step, boundary, reason codes, keys — are never masked), `spool_dir`
/// (files owner-only), `spool_max_bytes`, `push_steps` (send each finished step at once),
/// `queue_capacity`, `max_attempts`, `request_timeout` (seconds, more than 0) and
/// `backoff_base` (seconds).
///
/// Without a URL or key, or with a bad URL, the client is *disabled*: it records nothing,
/// warns once, and never raises.
#[pyclass(frozen, weakref, subclass, module = "flowtrail._flowtrail")]
pub struct Client {
    inner: Option<sdk::Client>,
    url: String,
    api_key: String,
}

#[pymethods]
impl Client {
    #[new]
    #[pyo3(signature = (url=None, api_key=None, *, capture=None, redact_fields=None, mask=None,
        spool_dir=None, spool_max_bytes=None, push_steps=None, queue_capacity=None,
        max_attempts=None, request_timeout=None, backoff_base=None, sdk_version=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        url: Option<Bound<'_, PyAny>>,
        api_key: Option<Bound<'_, PyAny>>,
        capture: Option<Bound<'_, PyAny>>,
        redact_fields: Option<Bound<'_, PyAny>>,
        mask: Option<Py<PyAny>>,
        spool_dir: Option<Bound<'_, PyAny>>,
        spool_max_bytes: Option<Bound<'_, PyAny>>,
        push_steps: Option<Bound<'_, PyAny>>,
        queue_capacity: Option<Bound<'_, PyAny>>,
        max_attempts: Option<Bound<'_, PyAny>>,
        request_timeout: Option<Bound<'_, PyAny>>,
        backoff_base: Option<Bound<'_, PyAny>>,
        sdk_version: Option<Bound<'_, PyAny>>,
    ) -> Self {
        let url = given(url)
            .map(|url| text(&url))
            .or_else(|| std::env::var("FLOWTRAIL_URL").ok())
            .unwrap_or_default();
        let api_key = given(api_key)
            .map(|key| text(&key))
            .or_else(|| std::env::var("FLOWTRAIL_API_KEY").ok())
            .unwrap_or_default();
        let spool_dir =
            given(spool_dir).and_then(|dir| match dir.extract::<std::path::PathBuf>() {
                Ok(dir) => Some(dir),
                Err(_) => {
                    report(
                        py,
                        &format!("spool_dir {} is not a path: no spool", text_of(&dir)),
                    );
                    None
                }
            });
        let spool_max_bytes = number_arg(
            py,
            spool_max_bytes.as_ref(),
            "spool_max_bytes",
            268_435_456.0,
            0.0,
            1e18,
        ) as u64;
        let push_steps = given(push_steps).is_some_and(|flag| flag.is_truthy().unwrap_or(false));
        let queue_capacity = number_arg(
            py,
            queue_capacity.as_ref(),
            "queue_capacity",
            1000.0,
            1.0,
            1e9,
        ) as usize;
        let max_attempts =
            number_arg(py, max_attempts.as_ref(), "max_attempts", 8.0, 1.0, 1000.0) as u32;
        let request_timeout = number_arg(
            py,
            request_timeout.as_ref(),
            "request_timeout",
            10.0,
            0.001,
            86_400.0,
        );
        let backoff_base = number_arg(py, backoff_base.as_ref(), "backoff_base", 0.2, 0.0, 3_600.0);
        let sdk_version = given(sdk_version).map(|version| text(&version));
        if url.is_empty() || api_key.is_empty() {
            report(
                py,
                "no FLOWTRAIL_URL or FLOWTRAIL_API_KEY (nor url=, api_key=): flows are not sent",
            );
            return Client {
                inner: None,
                url,
                api_key,
            };
        }
        let mut config = sdk::Config::new(url.clone(), api_key.clone());
        if let Some(policy) = capture_policy(
            py,
            capture.as_ref(),
            "the default (sampled, 50 per reason) is used",
        ) {
            config.capture = policy;
        }
        let fields: Vec<String> = match redact_fields.filter(|f| !f.is_none()) {
            None => Vec::new(),
            Some(one) if one.is_instance_of::<PyString>() => vec![text(&one)],
            Some(many) => match many.try_iter() {
                Ok(items) => items.flatten().map(|item| text(&item)).collect(),
                Err(_) => {
                    report(py, "redact_fields must be a list of object keys");
                    Vec::new()
                }
            },
        };
        config.redaction = sdk::Redaction::fields(fields);
        let mask = mask.filter(|mask| !mask.is_none(py));
        if let Some(mask) = mask.as_ref().filter(|mask| !mask.bind(py).is_callable()) {
            report(
                py,
                &format!(
                    "mask must be a callable mask(key, value) -> value, not {}: every value \
                     is masked \"[redacted]\"",
                    text_of(mask.bind(py))
                ),
            );
            config.redaction = config.redaction.with_mask(|_, value| {
                *value = Value::String("[redacted]".into());
            });
        } else if let Some(mask) = mask {
            config.redaction = config.redaction.with_mask(move |key, value| {
                MASKS_RUNNING.fetch_add(1, Ordering::SeqCst);
                let _running = MaskRunning;
                if FINALIZING.load(Ordering::SeqCst) {
                    *value = Value::String("[redacted]".into());
                    return;
                }
                Python::attach(|py| {
                    let masked = to_python(py, value)
                        .and_then(|given| mask.call1(py, (key, given)))
                        .map(|answer| to_json(answer.bind(py), 0));
                    *value = match masked {
                        Ok(masked) => masked,
                        // Fail closed: a mask that raises hides the value.
                        // The exception's type only: its message may quote the value.
                        Err(error) => {
                            let kind = error
                                .get_type(py)
                                .name()
                                .map(|name| name.to_string())
                                .unwrap_or_else(|_| "an exception".into());
                            report(
                                py,
                                &format!("the redaction mask raised {kind}: the value is masked"),
                            );
                            Value::String("[redacted]".into())
                        }
                    };
                });
            });
        }
        config.spool_dir = spool_dir;
        config.spool_max_bytes = spool_max_bytes;
        config.push_steps = push_steps;
        config.queue_capacity = queue_capacity;
        config.max_attempts = max_attempts;
        config.request_timeout = seconds(request_timeout, 10.0);
        config.backoff_base = seconds(backoff_base, 0.2);
        config.sdk = sdk::SdkInfo {
            name: "flowtrail-python".into(),
            version: sdk_version.unwrap_or_else(|| env!("CARGO_PKG_VERSION").into()),
        };
        let spooled = config.spool_dir.is_some().then(|| config.clone());
        let inner = match (sdk::Client::with_config(config), spooled) {
            (Ok(client), _) => Some(client),
            // A spool directory that cannot be made costs the spool, not the client.
            (Err(error @ sdk::Error::Spool(_)), Some(mut config)) => {
                report(py, &format!("{error}: flows are sent without a spool"));
                config.spool_dir = None;
                sdk::Client::with_config(config)
                    .inspect_err(|error| {
                        report(py, &format!("the client is disabled: {error}"));
                    })
                    .ok()
            }
            (Err(error), _) => {
                report(py, &format!("the client is disabled: {error}"));
                None
            }
        };
        Client {
            inner,
            url,
            api_key,
        }
    }

    /// Whether flows are sent (a URL and a key were given and the URL is valid).
    #[getter]
    fn enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// The server's base URL.
    #[getter]
    fn url(&self) -> &str {
        &self.url
    }

    /// Starts recording a run of `pipeline`: `with client.flow("p", input={...}) as flow:`.
    /// Leaving the block without an exception sends it as succeeded with `flow.output`; with
    /// one, as failed (the exception still propagates).
    #[pyo3(signature = (pipeline, *, input=None, tags=None))]
    fn flow(
        slf: &Bound<'_, Self>,
        pipeline: Bound<'_, PyAny>,
        input: Option<Bound<'_, PyAny>>,
        tags: Option<Bound<'_, PyAny>>,
    ) -> Flow {
        let client = slf.get();
        let pipeline = text(&pipeline);
        let flow = client.inner.as_ref().map(|c| c.flow(pipeline));
        Flow::start(slf.py(), flow, input, tags)
    }

    /// Starts recording a run of `pipeline` whose boundaries answer from the calls recorded
    /// in stored flow `flow_id` (fetched now, at most `timeout` seconds): `Step.boundary`
    /// never calls out, and raises [`ReplayMismatch`] / [`ReplayMissing`] when the run does
    /// not fit the recording. Raises [`ReplayError`] when the flow cannot be fetched (needs
    /// a key of scope `read` or `all`).
    #[pyo3(signature = (flow_id, pipeline, *, input=None, tags=None, timeout=None))]
    fn replay(
        slf: &Bound<'_, Self>,
        flow_id: Bound<'_, PyAny>,
        pipeline: Bound<'_, PyAny>,
        input: Option<Bound<'_, PyAny>>,
        tags: Option<Bound<'_, PyAny>>,
        timeout: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Flow> {
        let py = slf.py();
        let client = slf.get();
        let timeout = number_arg(py, timeout.as_ref(), "timeout", 10.0, 0.0, 86_400.0);
        let (flow_id, pipeline) = (text(&flow_id), text(&pipeline));
        let id = uuid::Uuid::try_parse(flow_id.trim())
            .map_err(|_| ReplayError::new_err(format!("{flow_id:?} is not a flow id")))?;
        let Some(inner) = client.inner.as_ref() else {
            return Err(ReplayError::new_err(
                "the client is disabled (no URL or key): nothing to replay from",
            ));
        };
        let (url, key) = (client.url.clone(), client.api_key.clone());
        let replay = py
            .detach(move || sdk::Replay::fetch(&url, &key, id, seconds(timeout, 10.0)))
            .map_err(|e| ReplayError::new_err(e.to_string()))?;
        Ok(Flow::start(
            py,
            Some(inner.replay(pipeline, replay)),
            input,
            tags,
        ))
    }

    /// Waits until everything queued so far is settled — sent, spooled, or given up (see
    /// `stats()`) — at most `timeout` seconds (the interpreter is released meanwhile).
    /// Whether it got there in time; it says nothing of flows lost (`shutdown` does). A flow
    /// settled as sent is acknowledged; the server makes it readable moments later.
    #[pyo3(signature = (timeout=None))]
    fn flush(&self, py: Python<'_>, timeout: Option<Bound<'_, PyAny>>) -> PyResult<bool> {
        let Some(client) = &self.inner else {
            return Ok(true);
        };
        let timeout = number_arg(py, timeout.as_ref(), "timeout", 5.0, 0.0, 86_400.0);
        let flushed = wait_interruptibly(py, seconds(timeout, 5.0), |slice| client.flush(slice));
        log_notices(py, client);
        flushed
    }

    /// Flushes, then stops the sender; what is left goes to the spool (if any) or is counted
    /// as dropped (and logged). Returns within `timeout` seconds: whether every flow handed
    /// to this client was sent or spooled (`False` when one was lost at any time — dropped or
    /// refused, see `stats()` — or is still pending, and for a disabled client, which sends
    /// nothing). Also run at interpreter exit.
    #[pyo3(signature = (timeout=None))]
    fn shutdown(&self, py: Python<'_>, timeout: Option<Bound<'_, PyAny>>) -> PyResult<bool> {
        let Some(client) = &self.inner else {
            return Ok(false);
        };
        let timeout = number_arg(py, timeout.as_ref(), "timeout", 5.0, 0.0, 86_400.0);
        let timeout = seconds(timeout, 5.0);
        // Flush in slices (Ctrl-C is seen between them), keeping a fifth of the time (at most
        // half a second) for the sender to stop and the spool to take what is left.
        let margin = (timeout / 5).min(Duration::from_millis(500));
        let flushed = wait_interruptibly(py, timeout.saturating_sub(margin), |slice| {
            client.flush(slice)
        });
        // Also after Ctrl-C: what is left goes to the spool before the interrupt propagates.
        py.detach(|| client.shutdown(margin));
        log_notices(py, client);
        flushed?;
        let stats = client.stats();
        Ok(stats.dropped == 0 && stats.failed == 0 && stats.pending == 0)
    }

    /// Counters of what happened to the flows handed to this client: `queued`, `sent`,
    /// `retried`, `dropped`, `failed`, `spooled`, `unspooled`, `pending` (`queued +
    /// unspooled = sent + failed + dropped + spooled + pending`), and `sdk_errors` (problems
    /// recording swallowed, in the whole process).
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        if let Some(client) = &self.inner {
            log_notices(py, client);
        }
        let stats = self.inner.as_ref().map(|c| c.stats()).unwrap_or_default();
        let dict = PyDict::new(py);
        for (name, value) in [
            ("queued", stats.queued),
            ("sent", stats.sent),
            ("retried", stats.retried),
            ("dropped", stats.dropped),
            ("failed", stats.failed),
            ("spooled", stats.spooled),
            ("unspooled", stats.unspooled),
            ("pending", stats.pending),
            ("adjusted", stats.adjusted),
            ("sdk_errors", SDK_ERRORS.load(Ordering::Relaxed)),
        ] {
            dict.set_item(name, value)?;
        }
        Ok(dict)
    }

    /// In a child process after `fork()`: starts this client's sender again (the parent's
    /// thread does not exist in the child). Called by the package's `os.register_at_fork`.
    fn _after_fork(&self, py: Python<'_>) {
        if let Some(client) = &self.inner
            && let Err(error) = client.restart_after_fork()
        {
            report(
                py,
                &format!("the sender did not restart after fork: {error}"),
            );
        }
    }
}

/// Runs `wait(slice)` with the interpreter released until it answers true or `timeout` has
/// passed. On the main thread (the only one Python delivers signals to) it waits in slices of
/// at most 100 ms and handles pending signals between them, so Ctrl-C interrupts a long wait
/// (the `KeyboardInterrupt` propagates); elsewhere in one go (taking the interpreter back
/// every 100 ms would only stall other threads). Whether it answered true.
fn wait_interruptibly(
    py: Python<'_>,
    timeout: Duration,
    wait: impl Fn(Duration) -> bool + Sync,
) -> PyResult<bool> {
    let on_main_thread = py
        .import("threading")
        .and_then(|threading| {
            let current = threading.call_method0("current_thread")?;
            let main = threading.call_method0("main_thread")?;
            Ok(current.is(&main))
        })
        .unwrap_or(true);
    if !on_main_thread {
        return Ok(py.detach(|| wait(timeout)));
    }
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let slice = left.min(Duration::from_millis(100));
        if py.detach(|| wait(slice)) {
            return Ok(true);
        }
        if left <= slice {
            return Ok(false);
        }
        py.check_signals()?;
    }
}

/// A number argument (`int`, `float`, or numeric text) within `min..=max`; anything else is
/// reported and `default` used.
fn number_arg(
    py: Python<'_>,
    value: Option<&Bound<'_, PyAny>>,
    name: &str,
    default: f64,
    min: f64,
    max: f64,
) -> f64 {
    let Some(value) = value.filter(|v| !v.is_none()) else {
        return default;
    };
    match number(value) {
        Some(n) if n.is_finite() && (min..=max).contains(&n) => n,
        _ => {
            report(
                py,
                &format!(
                    "{name} {} is not a number from {min} to {max}: {default} is used",
                    text_of(value)
                ),
            );
            default
        }
    }
}

/// An optional argument, `None` counted as not given.
fn given<'py>(value: Option<Bound<'py, PyAny>>) -> Option<Bound<'py, PyAny>> {
    value.filter(|v| !v.is_none())
}

fn seconds(value: f64, default: f64) -> Duration {
    let value = if value.is_finite() && value >= 0.0 {
        value
    } else {
        default
    };
    Duration::from_secs_f64(value.min(86_400.0))
}

/// Which of the package's context variables: the current flow or the current step.
#[derive(Clone, Copy)]
enum Current {
    Flow,
    Step,
}

/// Sets `object` (a flow, a step, or `None`) as the current flow or step in the package's
/// context variable; the token to reset it with.
fn enter_context(py: Python<'_>, which: Current, object: &Bound<'_, PyAny>) -> Option<Py<PyAny>> {
    let (flow_var, step_var) = CURRENT.get(py)?;
    let var = match which {
        Current::Flow => flow_var,
        Current::Step => step_var,
    };
    var.call_method1(py, "set", (object,)).ok()
}

fn exit_context(py: Python<'_>, which: Current, token: Option<Py<PyAny>>) {
    let (Some((flow_var, step_var)), Some(token)) = (CURRENT.get(py), token) else {
        return;
    };
    let var = match which {
        Current::Flow => flow_var,
        Current::Step => step_var,
    };
    // A token from another context (a generator resumed elsewhere) cannot reset: ignored.
    drop(var.call_method1(py, "reset", (token,)));
}

/// Locks `mutex`, releasing the interpreter while waiting for it (a thread holding it may
/// need the interpreter to let go); a lock poisoned by a panic is taken over.
fn lock<'a, T>(py: Python<'_>, mutex: &'a Mutex<T>) -> MutexGuard<'a, T> {
    mutex
        .lock_py_attached(py)
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A flow being recorded (`with client.flow(…) as flow:`). Its steps: `flow.step(…)`.
#[pyclass(frozen, weakref, module = "flowtrail._flowtrail")]
pub struct Flow {
    state: Mutex<FlowState>,
    /// The process that started it: a copy in a forked child is never sent by the child.
    pid: u32,
    id: String,
    /// The client it is sent through (for its notices), none in a disabled client.
    client: Option<sdk::Client>,
}

/// The tokens to reset the current flow and step variables with when a flow's block ends.
struct ContextTokens {
    flow: Option<Py<PyAny>>,
    step: Option<Py<PyAny>>,
}

struct FlowState {
    flow: Option<sdk::Flow>,
    /// What the flow held when it ended (input, output, tags; no steps): its getters still
    /// answer.
    ended: Option<FlowRecord>,
    /// Whether a call after the flow ended was reported (once per flow).
    late_reported: bool,
    /// The tokens of the current flow and step variables set by `__enter__`.
    tokens: Option<ContextTokens>,
    /// Every step started, to end those still open as failed when the flow ends.
    steps: Vec<Weak<Mutex<StepState>>>,
}

impl Flow {
    fn start(
        py: Python<'_>,
        flow: Option<sdk::Flow>,
        input: Option<Bound<'_, PyAny>>,
        tags: Option<Bound<'_, PyAny>>,
    ) -> Flow {
        let mut flow = flow;
        if let Some(flow) = flow.as_mut() {
            if let Some(input) = input.filter(|i| !i.is_none()) {
                flow.set_input(to_json(&input, 0));
            }
            if let Some(tags) = tags.filter(|t| !t.is_none()) {
                match tags.cast::<PyDict>() {
                    Ok(tags) => {
                        for (key, value) in tags.iter() {
                            flow.set_tag(text(&key), text(&value));
                        }
                    }
                    // (key, value) pairs, as the read client takes them.
                    Err(_) if !tags.is_instance_of::<PyString>() && tags.try_iter().is_ok() => {
                        for pair in tags.try_iter().into_iter().flatten().flatten() {
                            let parts: Vec<Bound<'_, PyAny>> = pair
                                .try_iter()
                                .map(|parts| parts.flatten().collect())
                                .unwrap_or_default();
                            match parts.as_slice() {
                                [key, value] if !pair.is_instance_of::<PyString>() => {
                                    flow.set_tag(text(key), text(value))
                                }
                                _ => report(
                                    py,
                                    &format!(
                                        "a tag is a (key, value) pair, not {}",
                                        text_of(&pair)
                                    ),
                                ),
                            }
                        }
                    }
                    Err(_) => report(py, "tags must be a dict or (key, value) pairs"),
                }
            }
        }
        Flow {
            id: flow
                .as_ref()
                .map(|f| f.id().to_string())
                .unwrap_or_default(),
            client: flow.as_ref().map(|f| f.client().clone()),
            state: Mutex::new(FlowState {
                flow,
                ended: None,
                late_reported: false,
                tokens: None,
                steps: Vec::new(),
            }),
            pid: std::process::id(),
        }
    }

    /// The flow's state, unless this is a copy made by `fork()` in a child process.
    fn state(&self, py: Python<'_>) -> Option<MutexGuard<'_, FlowState>> {
        (self.pid == std::process::id()).then(|| lock(py, &self.state))
    }

    /// Runs `f` on the flow being recorded (none once finished, or in a disabled client).
    fn with<R>(&self, py: Python<'_>, f: impl FnOnce(&mut sdk::Flow) -> R) -> Option<R> {
        self.state(py)?.flow.as_mut().map(f)
    }

    /// [`Flow::with`] for a caller's change: one made after the flow ended is reported
    /// (once per flow), not silently lost.
    fn change<R>(&self, py: Python<'_>, what: &str, f: impl FnOnce(&mut sdk::Flow) -> R) {
        let Some(mut state) = self.state(py) else {
            return;
        };
        if let Some(flow) = state.flow.as_mut() {
            drop(f(flow));
        } else if state.ended.is_some() && !std::mem::replace(&mut state.late_reported, true) {
            drop(state);
            report(
                py,
                &format!(
                    "flow {} has ended: {what} is not recorded (nor later changes)",
                    self.id
                ),
            );
        }
    }

    /// Reads the flow recorded so far (or as it ended).
    fn read<R>(&self, py: Python<'_>, f: impl FnOnce(&FlowRecord) -> R) -> Option<R> {
        let state = self.state(py)?;
        match (&state.flow, &state.ended) {
            (Some(flow), _) => Some(f(flow.record())),
            (None, Some(ended)) => Some(f(ended)),
            (None, None) => None,
        }
    }

    fn finish(&self, py: Python<'_>, error: Option<String>) {
        let Some(mut state) = self.state(py) else {
            return;
        };
        let open = std::mem::take(&mut state.steps);
        drop(state);
        // Steps still open (started without `with`, never finished; or running on another
        // thread) end now, as failed, so the flow holds them.
        for step in open.iter().filter_map(Weak::upgrade) {
            end_step(
                py,
                self,
                &step,
                sdk::FlowStatus::Failed,
                Some("the flow ended before this step finished".into()),
            );
        }
        let Some(flow) = self.state(py).and_then(|mut state| {
            let flow = state.flow.take()?;
            let record = flow.record();
            let mut ended = FlowRecord::new(record.id, record.pipeline.clone(), record.started_at);
            ended.input = record.input.clone();
            ended.output = record.output.clone();
            ended.tags = record.tags.clone();
            state.ended = Some(ended);
            Some(flow)
        }) else {
            return;
        };
        match error {
            None => flow.succeed_as_set(),
            Some(error) => flow.fail(error),
        }
        if let Some(client) = &self.client {
            log_notices(py, client);
        }
    }
}

#[pymethods]
impl Flow {
    /// The flow's id (a UUIDv7 as text; empty in a disabled client).
    #[getter]
    fn id(&self) -> &str {
        &self.id
    }

    /// What the flow decided, as recorded (JSON values); sent when the flow succeeds.
    #[getter]
    fn get_output<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let output = self.read(py, |record| record.output.clone());
        to_python(py, &output.unwrap_or_default())
    }

    #[setter]
    fn set_output(&self, output: Bound<'_, PyAny>) {
        let py = output.py();
        let value = to_json(&output, 0);
        self.change(py, "output", |flow| flow.set_output(value));
    }

    /// A small summary of what the flow was asked, as recorded (JSON values).
    #[getter]
    fn get_input<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let input = self.read(py, |record| record.input.clone());
        to_python(py, &input.unwrap_or_default())
    }

    #[setter]
    fn set_input(&self, input: Bound<'_, PyAny>) {
        let py = input.py();
        let value = to_json(&input, 0);
        self.change(py, "input", |flow| flow.set_input(value));
    }

    /// The flow's tags, as recorded: `{key: text}`.
    #[getter]
    fn tags<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let tags = self
            .read(py, |record| record.tags.clone())
            .unwrap_or_default();
        let dict = PyDict::new(py);
        for (key, value) in tags {
            dict.set_item(key, value)?;
        }
        Ok(dict)
    }

    /// A tag to filter flows by (`env=prod`, `seller=…`): `flow.tag("env", "prod")`.
    fn tag(&self, key: &Bound<'_, PyAny>, value: &Bound<'_, PyAny>) {
        let py = key.py();
        let (key, value) = (text(key), text(value));
        self.change(py, "a tag", |flow| flow.set_tag(key, value));
    }

    /// Starts the next step: `with flow.step("price_filter", kind="filter") as step:`.
    /// `kind`: `generate`, `retrieve`, `filter`, `rank`, `judge`, `select`, `transform`,
    /// `custom` (default). `capture`: this step's policy (default: the client's). A step
    /// started inside another step's block of the same flow records it as its parent. A step
    /// still open when its flow ends is added to it as failed.
    #[pyo3(signature = (name, kind=None, *, input=None, capture=None))]
    fn step(
        slf: &Bound<'_, Self>,
        name: Bound<'_, PyAny>,
        kind: Option<Bound<'_, PyAny>>,
        input: Option<Bound<'_, PyAny>>,
        capture: Option<Bound<'_, PyAny>>,
    ) -> Step {
        let py = slf.py();
        let name = text(&name);
        let kind = match kind.filter(|k| !k.is_none()) {
            Some(kind) => step_kind(py, &text(&kind)),
            None => sdk::StepKind::Custom,
        };
        let policy = capture_policy(py, capture.as_ref(), "the client's is used");
        let input = input.filter(|i| !i.is_none()).map(|i| to_json(&i, 0));
        let parent = current_step_seq(py, slf);
        let state = Arc::new(Mutex::new(StepState {
            recorder: None,
            ended: None,
            late_reported: false,
            token: None,
        }));
        let recorder = slf.get().state(py).and_then(|mut flow_state| {
            let flow = flow_state.flow.as_mut()?;
            let mut recorder = flow.begin_step(name, kind);
            if let Some(policy) = policy {
                recorder.capture(policy);
            }
            if let Some(input) = input {
                recorder.input(input);
            }
            if let Some(parent) = parent {
                recorder.parent(parent);
            }
            flow_state.steps.push(Arc::downgrade(&state));
            Some(recorder)
        });
        let seq = recorder.as_ref().map(|r| r.seq());
        lock(py, &state).recorder = recorder;
        Step {
            pid: std::process::id(),
            seq,
            flow: slf.clone().unbind(),
            state,
        }
    }

    /// Ends the flow as succeeded (with `output`, if given) and queues it for sending.
    #[pyo3(signature = (output=None))]
    fn succeed(&self, py: Python<'_>, output: Option<Bound<'_, PyAny>>) {
        if let Some(output) = output {
            self.set_output(output);
        }
        self.finish(py, None);
    }

    /// Ends the flow as failed with `error` and queues it for sending.
    fn fail(&self, error: &Bound<'_, PyAny>) {
        let py = error.py();
        self.finish(py, Some(text_of(error)));
    }

    /// Makes this the current flow, with no current step (a flow started inside another
    /// flow's step does not nest its steps there).
    fn __enter__<'py>(slf: Bound<'py, Self>) -> Bound<'py, Self> {
        let py = slf.py();
        if let Some(mut state) = slf.get().state(py) {
            drop(state.tokens.take());
            drop(state);
            let tokens = ContextTokens {
                flow: enter_context(py, Current::Flow, slf.as_any()),
                step: enter_context(py, Current::Step, &py.None().into_bound(py)),
            };
            if let Some(mut state) = slf.get().state(py) {
                state.tokens = Some(tokens);
            }
        }
        slf
    }

    #[pyo3(signature = (exc_type=None, exc=None, traceback=None))]
    fn __exit__(
        &self,
        py: Python<'_>,
        exc_type: Option<Bound<'_, PyAny>>,
        exc: Option<Bound<'_, PyAny>>,
        traceback: Option<Bound<'_, PyAny>>,
    ) -> bool {
        drop(traceback);
        let tokens = self.state(py).and_then(|mut state| state.tokens.take());
        if let Some(tokens) = tokens {
            exit_context(py, Current::Step, tokens.step);
            exit_context(py, Current::Flow, tokens.flow);
        }
        self.finish(py, exception_text(exc_type.as_ref(), exc.as_ref()));
        false
    }
}

impl Drop for Flow {
    fn drop(&mut self) {
        let state = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Some(flow) = state.flow.take() {
            if self.pid == std::process::id() {
                // Never finished: sent as failed (the Rust SDK's rule).
                drop(flow);
            } else {
                // The parent's flow, copied by fork: the parent sends it.
                flow.discard();
            }
        }
    }
}

/// `"TypeError: message"` for an exception leaving a block, `None` without one.
fn exception_text(
    exc_type: Option<&Bound<'_, PyAny>>,
    exc: Option<&Bound<'_, PyAny>>,
) -> Option<String> {
    let exc_type = exc_type.filter(|t| !t.is_none())?;
    let name = exc_type
        .getattr("__name__")
        .map(|n| text_of(&n))
        .unwrap_or_else(|_| text_of(exc_type));
    let message = exc.map(text_of).unwrap_or_default();
    Some(if message.is_empty() {
        name
    } else {
        format!("{name}: {message}")
    })
}

/// The seq of the step whose block we are in, when it belongs to `flow`.
fn current_step_seq(py: Python<'_>, flow: &Bound<'_, Flow>) -> Option<u32> {
    let (_, step_var) = CURRENT.get(py)?;
    let current = step_var.call_method1(py, "get", (py.None(),)).ok()?;
    let step = current.bind(py).cast::<Step>().ok()?;
    let step = step.get();
    step.flow.bind(py).is(flow).then_some(step.seq).flatten()
}

/// Adds the step whose state is `state` to `flow` with `status` (and `reasoning`), unless it
/// was added already.
fn end_step(
    py: Python<'_>,
    flow: &Flow,
    state: &Mutex<StepState>,
    status: sdk::FlowStatus,
    reasoning: Option<String>,
) {
    let recorder = lock(py, state).recorder.take();
    if let Some(mut recorder) = recorder {
        if let Some(reasoning) = reasoning {
            recorder.reasoning(reasoning);
        }
        let seq = recorder.seq();
        let mut ended = recorder.record().clone_without_candidates();
        let added = flow.with(py, move |flow| {
            flow.end_step(recorder, status);
            // As added: status, end time and the counts the step made.
            flow.record()
                .steps
                .iter()
                .rev()
                .find(|step| step.seq == seq)
                .map(StepRecord::clone_without_candidates)
        });
        match added.flatten() {
            Some(added) => ended = added,
            None => report(
                py,
                &format!("step {seq} ended after its flow did: it is not recorded"),
            ),
        }
        lock(py, state).ended = Some(ended);
    }
}

/// A step being recorded (`with flow.step(…) as step:`): `step.observe(…)` each candidate,
/// set `step.reasoning`, call dependencies through `step.boundary(…)`.
#[pyclass(frozen, weakref, module = "flowtrail._flowtrail")]
pub struct Step {
    flow: Py<Flow>,
    seq: Option<u32>,
    /// The process that started it: in a forked child the step is inert (its lock may have
    /// been held by a thread that does not exist there).
    pid: u32,
    /// Shared with its flow (weakly), which ends it if it is still open when the flow ends.
    state: Arc<Mutex<StepState>>,
}

struct StepState {
    recorder: Option<sdk::StepRecorder>,
    /// What the step held when it ended (no observations): its getters still answer.
    ended: Option<StepRecord>,
    /// Whether a call after the step ended was reported (once per step).
    late_reported: bool,
    token: Option<Py<PyAny>>,
}

impl Step {
    /// The step's state, unless this is a copy made by `fork()` in a child process.
    fn state(&self, py: Python<'_>) -> Option<MutexGuard<'_, StepState>> {
        (self.pid == std::process::id()).then(|| lock(py, &self.state))
    }

    /// Runs `f` on the step being recorded; after it ended, reports the call (once per step)
    /// as `what` not recorded.
    fn with<R>(
        &self,
        py: Python<'_>,
        what: &str,
        f: impl FnOnce(&mut sdk::StepRecorder) -> R,
    ) -> Option<R> {
        let mut state = self.state(py)?;
        if let Some(recorder) = state.recorder.as_mut() {
            return Some(f(recorder));
        }
        if state.ended.is_some() && !std::mem::replace(&mut state.late_reported, true) {
            drop(state);
            let seq = self.seq.map(|s| s.to_string()).unwrap_or_default();
            let flow = &self.flow.bind(py).get().id;
            report(
                py,
                &format!(
                    "step {seq} of flow {flow} has ended: {what} is not recorded (nor later \
                     calls)"
                ),
            );
        }
        None
    }

    /// Reads the step recorded so far (or as it ended).
    fn read<R>(&self, py: Python<'_>, f: impl FnOnce(&StepRecord) -> R) -> Option<R> {
        let state = self.state(py)?;
        match (&state.recorder, &state.ended) {
            (Some(recorder), _) => Some(f(recorder.record())),
            (None, Some(ended)) => Some(f(ended)),
            (None, None) => None,
        }
    }

    fn close(&self, py: Python<'_>, status: sdk::FlowStatus, reasoning: Option<String>) {
        if self.pid == std::process::id() {
            end_step(py, self.flow.bind(py).get(), &self.state, status, reasoning);
        }
    }

    /// Sets `candidates_in` or `candidates_out` from a Python count.
    fn set_count(
        &self,
        n: &Bound<'_, PyAny>,
        field: &str,
        set: impl FnOnce(&mut sdk::StepRecorder, u64),
    ) {
        let py = n.py();
        if n.is_none() {
            return;
        }
        match n.extract::<u64>() {
            Ok(n) => {
                self.with(py, field, |recorder| set(recorder, n));
            }
            Err(_) => report(
                py,
                &format!("{field} {} is not a count: not recorded", text(n)),
            ),
        }
    }
}

#[pymethods]
impl Step {
    /// The step's number in its flow (`None` in a disabled client).
    #[getter]
    fn seq(&self) -> Option<u32> {
        self.seq
    }

    /// Records one candidate's fate: `step.observe("B0CASE", "rejected", score=0.12,
    /// reasons=[("price_out_of_range", "9.99 < 22.50")], attributes={"price": 9.99})`.
    /// `verdict`: `kept`, `rejected` or `selected`. It always counts (`candidates_in`,
    /// `candidates_out`, the reason histogram are exact); whether it is kept follows the
    /// step's capture policy, and `attributes` are converted only when it is. Never raises.
    #[pyo3(signature = (candidate_id, verdict, score=None, *, reasons=None, attributes=None))]
    fn observe(
        &self,
        py: Python<'_>,
        candidate_id: &Bound<'_, PyAny>,
        verdict: &Bound<'_, PyAny>,
        score: Option<Bound<'_, PyAny>>,
        reasons: Option<Bound<'_, PyAny>>,
        attributes: Option<Bound<'_, PyAny>>,
    ) {
        let verdict = text(verdict);
        let Some(verdict) = sdk::Verdict::parse(&verdict.trim().to_ascii_lowercase()) else {
            report(
                py,
                &format!("unknown verdict {verdict:?} (kept, rejected, selected): not observed"),
            );
            return;
        };
        let id = match candidate_id.cast::<PyString>() {
            Ok(text) => lossy(text),
            Err(_) => text_of(candidate_id),
        };
        let mut candidate = sdk::Candidate::new(id, verdict);
        if let Some(score) = score.filter(|s| !s.is_none()) {
            match number(&score) {
                // An integer a double cannot hold exactly: kept as its digits.
                Some(n) if n.abs() >= MAX_EXACT_SCORE && score.is_instance_of::<PyInt>() => {
                    candidate = candidate.attr("score_out_of_range", text_of(&score));
                }
                Some(score) => candidate = candidate.score(score),
                None => report(
                    py,
                    &format!("score {} is not a number: not recorded", text(&score)),
                ),
            }
        }
        if let Some(reasons) = reasons.filter(|r| !r.is_none()) {
            for (code, text) in reasons_of(py, &reasons) {
                candidate = match text {
                    Some(text) => candidate.reason(code, text),
                    None => candidate.reason_code(code),
                };
            }
        }
        let attributes = attributes.filter(|a| !a.is_none());
        let convert = || match attributes.as_ref().map(|a| to_json(a, 0)) {
            Some(Value::Object(members)) => members,
            Some(other) => {
                let mut members = Map::new();
                members.insert("value".into(), other);
                members
            }
            None => Map::new(),
        };
        // Counted under the step's lock; the attributes of a kept candidate are converted
        // after it is released (converting may run the caller's Python code: `__str__`).
        if self.with(py, "an observation", |recorder| recorder.admit(&candidate)) == Some(true) {
            let candidate = candidate.attributes(convert());
            self.with(py, "an observation", |recorder| {
                recorder.keep(candidate);
            });
        }
    }

    /// The step's explanation of what it did and why (`None` until set).
    #[getter]
    fn get_reasoning(&self, py: Python<'_>) -> Option<String> {
        self.read(py, |record| record.reasoning.clone()).flatten()
    }

    #[setter]
    fn set_reasoning(&self, text: &Bound<'_, PyAny>) {
        let py = text.py();
        let text = text_of(text);
        self.with(py, "reasoning", |r| {
            r.reasoning(text);
        });
    }

    /// What the step was given (a small summary), as recorded (JSON values).
    #[getter]
    fn get_input<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let input = self.read(py, |record| record.input.clone());
        to_python(py, &input.unwrap_or_default())
    }

    #[setter]
    fn set_input(&self, input: &Bound<'_, PyAny>) {
        let py = input.py();
        let value = to_json(input, 0);
        self.with(py, "input", |r| {
            r.input(value);
        });
    }

    /// What the step produced (a small summary), as recorded (JSON values).
    #[getter]
    fn get_output<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let output = self.read(py, |record| record.output.clone());
        to_python(py, &output.unwrap_or_default())
    }

    #[setter]
    fn set_output(&self, output: &Bound<'_, PyAny>) {
        let py = output.py();
        let value = to_json(output, 0);
        self.with(py, "output", |r| {
            r.output(value);
        });
    }

    /// Exact number of candidates received, when not every one is observed (`None` until
    /// set: then it is counted from the observations when the step ends).
    #[getter]
    fn get_candidates_in(&self, py: Python<'_>) -> Option<u64> {
        self.read(py, |record| record.candidates_in).flatten()
    }

    #[setter]
    fn set_candidates_in(&self, n: &Bound<'_, PyAny>) {
        self.set_count(n, "candidates_in", |r, n| {
            r.candidates_in(n);
        });
    }

    /// Exact number of candidates passed on, when not every one is observed (`None` until
    /// set: then it is counted from the observations when the step ends).
    #[getter]
    fn get_candidates_out(&self, py: Python<'_>) -> Option<u64> {
        self.read(py, |record| record.candidates_out).flatten()
    }

    #[setter]
    fn set_candidates_out(&self, n: &Bound<'_, PyAny>) {
        self.set_count(n, "candidates_out", |r, n| {
            r.candidates_out(n);
        });
    }

    /// Calls a non-deterministic dependency through a recorded boundary:
    /// `keywords = step.boundary("llm.keywords", prompt, lambda: llm(prompt))`. The input
    /// and output are recorded in the step (as JSON). In a replayed flow `fn` is never
    /// called: the recorded output is returned, or [`ReplayMismatch`] (another input than
    /// recorded) / [`ReplayMissing`] (no recorded call left) is raised. An exception `fn`
    /// raises propagates, and nothing is recorded for the call.
    fn boundary<'py>(
        &self,
        py: Python<'py>,
        name: Bound<'py, PyAny>,
        input: Bound<'py, PyAny>,
        r#fn: Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        // Any name is taken, as text (`None` → "None").
        let name = text(&name);
        let given = to_json(&input, 0);
        let flow = self.flow.bind(py).get();
        let answer = flow.with(py, |flow| flow.replay_answer(&name, given.clone()));
        match answer.flatten() {
            Some(Ok(recorded)) => {
                let failed = recorded.error.clone();
                let output = to_python(py, &recorded.output)?;
                self.with(py, "a recorded call", |r| {
                    r.push_boundary(recorded);
                });
                match failed {
                    // The recorded call raised: so does its replay, as the same type when
                    // that type can be made again from its message.
                    Some(error) => Err(recorded_exception(py, &error)),
                    None => Ok(output),
                }
            }
            Some(Err(error)) => Err(match error {
                sdk::Error::ReplayMismatch { .. } => ReplayMismatch::new_err(error.to_string()),
                other => ReplayMissing::new_err(other.to_string()),
            }),
            None => match r#fn.call0() {
                Ok(output) => {
                    let recorded = to_json(&output, 0);
                    self.with(py, "a recorded call", |r| {
                        r.push_boundary(sdk::Boundary {
                            name,
                            input: given,
                            output: recorded,
                            error: None,
                        });
                    });
                    Ok(output)
                }
                // A call that raised is recorded too (its replay raises again), and the
                // exception propagates.
                Err(raised) => {
                    let error = sdk::BoundaryError {
                        kind: qualified_type_name(py, &raised),
                        message: raised
                            .value(py)
                            .str()
                            .map(|text| lossy(&text))
                            .unwrap_or_default(),
                    };
                    self.with(py, "a recorded call", |r| {
                        r.push_boundary(sdk::Boundary {
                            name,
                            input: given,
                            output: Value::Null,
                            error: Some(error),
                        });
                    });
                    Err(raised)
                }
            },
        }
    }

    /// Adds the step to its flow as succeeded (what leaving its block does).
    fn finish(&self, py: Python<'_>) {
        self.close(py, sdk::FlowStatus::Succeeded, None);
    }

    /// Adds the step to its flow as failed, with `reasoning`.
    fn fail(&self, py: Python<'_>, reasoning: &Bound<'_, PyAny>) {
        self.close(py, sdk::FlowStatus::Failed, Some(text_of(reasoning)));
    }

    fn __enter__<'py>(slf: Bound<'py, Self>) -> Bound<'py, Self> {
        let py = slf.py();
        if slf.get().pid == std::process::id() {
            let token = enter_context(py, Current::Step, slf.as_any());
            if let Some(mut state) = slf.get().state(py) {
                state.token = token;
            }
        }
        slf
    }

    #[pyo3(signature = (exc_type=None, exc=None, traceback=None))]
    fn __exit__(
        &self,
        py: Python<'_>,
        exc_type: Option<Bound<'_, PyAny>>,
        exc: Option<Bound<'_, PyAny>>,
        traceback: Option<Bound<'_, PyAny>>,
    ) -> bool {
        drop(traceback);
        let Some(token) = self.state(py).map(|mut state| state.token.take()) else {
            return false;
        };
        exit_context(py, Current::Step, token);
        match exception_text(exc_type.as_ref(), exc.as_ref()) {
            None => self.close(py, sdk::FlowStatus::Succeeded, None),
            Some(error) => self.close(py, sdk::FlowStatus::Failed, Some(error)),
        }
        false
    }
}

impl Drop for Step {
    fn drop(&mut self) {
        // A step never ended (its block never left, `finish()` never called) is added to
        // its flow as failed, as the Rust SDK's guard does.
        if self.pid != std::process::id() {
            return;
        }
        Python::attach(|py| {
            end_step(
                py,
                self.flow.bind(py).get(),
                &self.state,
                sdk::FlowStatus::Failed,
                Some("the step ended without finish() (no with-block, or it was dropped)".into()),
            );
        });
    }
}

/// Hands the package's `ContextVar`s of the current flow and step to the module.
#[pyfunction]
fn _set_context_vars(py: Python<'_>, flow: Py<PyAny>, step: Py<PyAny>) {
    let _ = CURRENT.set(py, (flow, step));
}

/// Counts a mask call as ended when dropped (also when the mask unwinds).
struct MaskRunning;

impl Drop for MaskRunning {
    fn drop(&mut self) {
        MASKS_RUNNING.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Called by the package's exit hook after the clients shut down: a Python mask is no longer
/// called (values are masked `"[redacted]"`), and calls under way on other threads are
/// waited for, with the interpreter released, before the interpreter finalizes.
#[pyfunction]
fn _finalizing(py: Python<'_>) {
    FINALIZING.store(true, Ordering::SeqCst);
    py.detach(|| {
        while MASKS_RUNNING.load(Ordering::SeqCst) > 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    });
}

/// Called in a child process after `fork()`: mask calls under way in the parent's threads
/// do not exist here.
#[pyfunction]
fn _reset_after_fork() {
    MASKS_RUNNING.store(0, Ordering::SeqCst);
}

/// The native module.
#[pymodule]
fn _flowtrail(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Client>()?;
    m.add_class::<Flow>()?;
    m.add_class::<Step>()?;
    m.add("ReplayError", m.py().get_type::<ReplayError>())?;
    m.add("ReplayMismatch", m.py().get_type::<ReplayMismatch>())?;
    m.add("ReplayMissing", m.py().get_type::<ReplayMissing>())?;
    m.add("ReplayedError", m.py().get_type::<ReplayedError>())?;
    m.add_function(wrap_pyfunction!(_set_context_vars, m)?)?;
    m.add_function(wrap_pyfunction!(_finalizing, m)?)?;
    m.add_function(wrap_pyfunction!(_reset_after_fork, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
