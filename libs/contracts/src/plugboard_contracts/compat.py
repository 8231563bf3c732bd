"""Classifying a change between two versions of an event schema.

A subscriber of another team reads our events with a model generated from an
earlier schema. What it can survive: a new optional field (tolerant readers
ignore it). What it cannot: a field it reads disappearing, changing type or
shape, or a field becoming required that old events lack. ``breaking_changes``
lists the second kind; an empty list means the change is compatible.
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]
_ANNOTATIONS = frozenset({"description", "title", "default", "examples", "$id", "$schema"})


def breaking_changes(old: Schema, new: Schema) -> list[str]:
    """Every breaking difference from ``old`` to ``new``, as ``"<path>: <what>"``."""
    found: list[str] = []
    _compare("", old, new, old, new, found)
    return found


def _resolve(node: Any, root: Schema) -> Any:
    """Follow local ``$ref``s (``#/$defs/X``) until a concrete schema."""
    seen: set[str] = set()
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        if not isinstance(ref, str) or not ref.startswith("#/") or ref in seen:
            return node
        seen.add(ref)
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part, {}) if isinstance(target, dict) else {}
        node = target
    return node


def _compare(path: str, old: Any, new: Any, old_root: Schema, new_root: Schema, out: list[str]):
    old, new = _resolve(old, old_root), _resolve(new, new_root)
    if not isinstance(old, dict) or not isinstance(new, dict):
        if old != new:
            out.append(f"{path or '/'}: retyped")
        return
    if "properties" in old or "properties" in new:
        _compare_objects(path, old, new, old_root, new_root, out)
    elif _same_length_list(old, new, "anyOf"):
        for branch_old, branch_new in zip(old["anyOf"], new["anyOf"], strict=True):
            _compare(path, branch_old, branch_new, old_root, new_root, out)
    elif "items" in old and "items" in new and _shape(old) == _shape(new):
        _compare(f"{path}[]", old["items"], new["items"], old_root, new_root, out)
    elif _deep(old, old_root) != _deep(new, new_root):
        out.append(f"{path or '/'}: retyped")


def _compare_objects(
    path: str, old: Schema, new: Schema, old_root: Schema, new_root: Schema, out: list[str]
) -> None:
    old_props: Schema = old.get("properties", {})
    new_props: Schema = new.get("properties", {})
    old_required, new_required = set(old.get("required", ())), set(new.get("required", ()))
    for name in old_props:
        if name not in new_props:
            out.append(f"{path}/{name}: removed")
        else:
            _compare(f"{path}/{name}", old_props[name], new_props[name], old_root, new_root, out)
    for name in sorted(new_required - old_required):
        what = "added as required" if name not in old_props else "became required"
        out.append(f"{path}/{name}: {what}")


def _same_length_list(old: Schema, new: Schema, key: str) -> bool:
    return (
        isinstance(old.get(key), list)
        and isinstance(new.get(key), list)
        and len(old[key]) == len(new[key])
    )


def _shape(node: Schema) -> Schema:
    """The node without annotations and without its nested ``items``."""
    return {k: v for k, v in node.items() if k not in _ANNOTATIONS and k != "items"}


def _deep(node: Any, root: Schema, depth: int = 0) -> Any:
    """The schema with refs inlined and annotations dropped, for an equality check."""
    node = _resolve(node, root)
    if depth > 32:
        return node
    if isinstance(node, dict):
        return {k: _deep(v, root, depth + 1) for k, v in node.items() if k not in _ANNOTATIONS}
    if isinstance(node, list):
        return [_deep(item, root, depth + 1) for item in node]
    return node
