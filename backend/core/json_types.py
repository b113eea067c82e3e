"""Names for JSON-shaped values (request bodies, results files, registry entries), for type hints only.

Why: `dict[str, Any]` switched type checking off for everything read out of a JSON document. `JSONValue` is what
`json.loads` can return; code that reads a field narrows it (`isinstance`, or `json_object` / `json_list` below),
so a wrong assumption about a file's shape is a type error here and a clear refusal at run time, not a crash deep
inside. A document whose shape is fixed deserves a TypedDict or a dataclass instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypeAlias

JSONScalar: TypeAlias = str | int | float | bool | None
JSONValue: TypeAlias = JSONScalar | list["JSONValue"] | dict[str, "JSONValue"]
JSONObject: TypeAlias = dict[str, JSONValue]
JSONList: TypeAlias = list[JSONValue]

# What code builds and only writes out (a response body, an event of a stream): read-only containers, so typed
# pieces (`list[str]`, `dict[str, float]`, a tuple) fit in without a copy. A document that is read back is a
# JSONValue / JSONObject instead, narrowed where a field is read.
JSONOutput: TypeAlias = JSONScalar | Sequence["JSONOutput"] | Mapping[str, "JSONOutput"]
JSONOutputObject: TypeAlias = dict[str, JSONOutput]


def json_object(value: object) -> JSONObject:
    """`value` when it is a JSON object, else an empty one (a field that holds something else reads as absent)."""
    return value if isinstance(value, dict) else {}


def json_list(value: object) -> JSONList:
    """`value` when it is a JSON array, else an empty one."""
    return value if isinstance(value, list) else []
