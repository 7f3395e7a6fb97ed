"""Older run records brought to the current schema, as plain JSON, before they are typed.

Each step turns version N's dict into version N+1's and :func:`migrate` chains them, so a
record written by any earlier xbench still loads (and shows on leaderboards). A record of
a newer version than this xbench knows is refused with :class:`NewerSchemaError` rather
than misread.

Version 1 (xbench 0.1) kept dict payloads: ``model`` flat (name next to the settings),
``efficiency.train_step_ms`` as ``{median, iqr, count}``, and ``cross_attention`` with
``latency_ms{median, iqr, count}``, ``memory_bytes``/``memory_method``, ``flops``/
``flops_convention`` and a derived ``tflops`` side by side (only ``shape``, ``status`` and
``reason`` when it could not run). Version 2 types them as
:class:`~xbench.measure.types.Latency`, :class:`~xbench.measure.types.Measurement` etc.
Version 3 measures cross-attention in three phases (``train``, ``prefill``, ``decode``) with
the task's real padding masks; version 2's single forward at the task's longest shapes,
every key real, becomes the ``prefill`` phase with a note saying so.
"""

from __future__ import annotations

from typing import Any

SCHEMA_VERSION = 3
#: ``CrossAttentionPhases.note`` of a record migrated from version 2 or 1.
SINGLE_FORWARD_NOTE = (
    "older record (schema 2 or before): one forward at the task's longest target and"
    " source, random inputs, every key real (an all-ones mask), kept as prefill; no train"
    " or decode phase"
)


class NewerSchemaError(ValueError):
    """A record written by a newer xbench than this one."""


def migrate(data: Any) -> dict[str, Any]:
    """``data`` (a record as read from JSON) in the current schema version."""
    if not isinstance(data, dict):
        raise ValueError(f"not a run record (a JSON {_json_type(data)}, not an object)")
    version = data.get("schema_version")
    if type(version) is not int or version < 1:
        raise ValueError(f"not a run record (schema_version {version!r})")
    if version > SCHEMA_VERSION:
        raise NewerSchemaError(
            f"schema version {version} is newer than this xbench reads ({SCHEMA_VERSION});"
            " upgrade xbench to read it"
        )
    for step in range(version, SCHEMA_VERSION):
        try:
            data = _STEPS[step](data)
        except (TypeError, KeyError, AttributeError, ValueError) as error:
            raise ValueError(f"not a version-{step} run record ({error!s})") from error
    return data


def _json_type(value: Any) -> str:
    names = {list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")


def latency_from_v1(summary: dict[str, Any]) -> dict[str, Any]:
    """A version-1 ``{median, iqr, count}`` summary (milliseconds) as a ``Latency`` dict."""
    return {"median_ms": summary["median"], "iqr_ms": summary["iqr"], "count": summary["count"]}


def measurement_from_v1(payload: dict[str, Any]) -> dict[str, Any]:
    """A version-1 cross-attention payload as a ``Measurement`` dict.

    Version 1 always timed a forward pass under ``no_grad`` with every key real, which
    the shape now says (``passes``, ``padded_fraction``).
    """
    old = dict(payload)
    new = {
        "shape": {"passes": "fwd", "padded_fraction": 0.0, **old.pop("shape")},
        "status": old.pop("status", "ok"),
        "reason": old.pop("reason", None),
        "describe": old.pop("describe", {}),
    }
    if "latency_ms" in old:
        new["latency"] = latency_from_v1(old.pop("latency_ms"))
    if "memory_bytes" in old:
        new["memory"] = {"bytes": old.pop("memory_bytes"), "method": old.pop("memory_method")}
    if "flops" in old:
        new["flops"] = {"count": old.pop("flops"), "convention": old.pop("flops_convention")}
    old.pop("tflops", None)  # derived from flops and latency: Measurement.tflops
    if old:
        raise ValueError(f"cross_attention: unknown field(s) {', '.join(sorted(old))}")
    return new


def _v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    model = dict(data.get("model") or {})
    efficiency = dict(data.get("efficiency") or {})
    if "train_step_ms" in efficiency:
        efficiency["train_step"] = latency_from_v1(efficiency.pop("train_step_ms"))
    if "cross_attention" in efficiency:
        efficiency["cross_attention"] = measurement_from_v1(efficiency["cross_attention"])
    return data | {
        "schema_version": 2,
        "model": {"name": model.pop("name", None), "settings": model},
        "efficiency": efficiency,
    }


def _v2_to_v3(data: dict[str, Any]) -> dict[str, Any]:
    efficiency = dict(data.get("efficiency") or {})
    if efficiency.get("cross_attention") is not None:
        efficiency["cross_attention"] = {
            "prefill": efficiency["cross_attention"],
            "note": SINGLE_FORWARD_NOTE,
        }
    return data | {"schema_version": 3, "efficiency": efficiency}


# version -> the step that turns a record of that version into the next one
_STEPS = {1: _v1_to_v2, 2: _v2_to_v3}
