"""Extract the engine arguments a vLLM release accepts, from its wheel, into the list the tests check.

The vLLM backend builds `AsyncEngineArgs(**model.json)`, so a `model.json` may use exactly the fields
of that dataclass (and of `EngineArgs`, its base). A field is marked deprecated when its CLI flag is
registered with `deprecated=True` or its help (or the config attribute it mirrors) says so.

    pip download --no-deps vllm==0.13.0 -d /tmp/vllm
    python deploy/vllm_engine_args.py /tmp/vllm/vllm-0.13.0-*.whl \
        --container nvcr.io/nvidia/tritonserver:26.01-vllm-python-py3 > deploy/vllm_engine_args.json

Reads the source with `ast`; nothing of vLLM is imported or installed.
"""
from __future__ import annotations

import argparse
import ast
import json
import re
import sys
import zipfile
from pathlib import Path

ARG_UTILS = "vllm/engine/arg_utils.py"
CONFIG_DIR = "vllm/config/"
ENGINE_CLASSES = ("EngineArgs", "AsyncEngineArgs")
# Wording vLLM uses for a field on its way out ("Enable deprecated metrics" is not one).
DEPRECATED = re.compile(r"\[deprecated\]|\bis deprecated\b|\bwill be deprecated\b|\bhas been replaced by\b", re.I)


def class_fields(tree: ast.Module, names: tuple[str, ...]) -> dict[str, ast.expr | None]:
    """Public annotated attributes of the named classes, with their default expressions."""
    fields: dict[str, ast.expr | None] = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name in names:
            for stmt in node.body:
                if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                    if not stmt.target.id.startswith("_"):
                        fields[stmt.target.id] = stmt.value
    return fields


def attribute_docs(tree: ast.Module) -> dict[tuple[str, str], str]:
    """(class, attribute) -> the docstring under the attribute, for every class of a module."""
    docs: dict[tuple[str, str], str] = {}
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        body = node.body
        for stmt, after in zip(body, body[1:]):
            if (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)
                    and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                    and isinstance(after.value.value, str)):
                docs[(node.name, stmt.target.id)] = after.value.value
    return docs


def mirrored_attribute(default: ast.expr | None) -> tuple[str, str] | None:
    """`ModelConfig.dtype` or `get_field(CompilationConfig, "x")` -> (class, attribute)."""
    if isinstance(default, ast.Attribute) and isinstance(default.value, ast.Name):
        return default.value.id, default.attr
    if (isinstance(default, ast.Call) and len(default.args) == 2 and isinstance(default.args[0], ast.Name)
            and isinstance(default.args[1], ast.Constant)):
        return default.args[0].id, str(default.args[1].value)
    return None


def deprecated_flags(tree: ast.Module) -> dict[str, str]:
    """Field name -> why, for every `add_argument("--flag", ..., deprecated=True | help="[DEPRECATED]...")`."""
    found: dict[str, str] = {}
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_argument"):
            continue
        flags = [a.value for a in node.args if isinstance(a, ast.Constant) and str(a.value).startswith("--")]
        kw = {k.arg: k.value for k in node.keywords}
        marked = isinstance(kw.get("deprecated"), ast.Constant) and kw["deprecated"].value is True
        help_text = kw["help"].value if isinstance(kw.get("help"), ast.Constant) else ""
        if flags and (marked or DEPRECATED.search(str(help_text))):
            found[flags[0][2:].replace("-", "_")] = str(help_text) or "registered with deprecated=True"
    return found


def extract(wheel: Path) -> dict:
    with zipfile.ZipFile(wheel) as whl:
        arg_utils = ast.parse(whl.read(ARG_UTILS))
        docs: dict[tuple[str, str], str] = {}
        for name in whl.namelist():
            if name.startswith(CONFIG_DIR) and name.endswith(".py"):
                docs.update(attribute_docs(ast.parse(whl.read(name))))
    fields = class_fields(arg_utils, ENGINE_CLASSES)
    deprecated = deprecated_flags(arg_utils)
    for name, default in fields.items():
        source = mirrored_attribute(default)
        doc = docs.get(source, "") if source else ""
        if DEPRECATED.search(doc):
            deprecated[name] = " ".join(doc.split())
    version = wheel.name.split("-")[1]
    return {"vllm": version, "fields": sorted(fields),
            "deprecated": {k: deprecated[k] for k in sorted(deprecated)}}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("wheel", type=Path, help="a vllm-<version>-*.whl (pip download --no-deps vllm==<version>)")
    parser.add_argument("--container", required=True, help="the NGC image whose vLLM this is")
    args = parser.parse_args(argv)
    result = extract(args.wheel)
    command = (f"pip download --no-deps vllm=={result['vllm']} -d /tmp/vllm && python deploy/vllm_engine_args.py "
               f"/tmp/vllm/{args.wheel.name} --container {args.container} > deploy/vllm_engine_args.json")
    json.dump({"container": args.container, "command": command, **result}, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
