"""`tmr keys ...` and `tmr usage`: tenant keys and their usage, over the front's admin API, as plain tables.

Examples:
    export TMR_ADMIN_KEY=...                 # the front's --admin-key
    tmr keys create team-a --models smollm2_135m_instruct --rpm 60 --budget-tokens 1000000 --period month
    tmr keys list
    tmr keys update team-a --rpm 120 --unset budget_tokens
    tmr keys revoke team-a
    tmr usage --key team-a --since 2025-06-01 --group day
"""
from __future__ import annotations

import argparse
import os
import sys
from datetime import datetime, timezone
from typing import Any, Callable

import httpx

from .admin import DEFAULT_API_URL, AdminClient, AdminError

# The key's fields that may be unset (`--unset`): each is then no limit, or no allow-list.
CLEARABLE = ("models", "use_cases", "prefer", "rpm", "tpm", "budget_tokens", "expires_at", "cache_namespace")
USAGE_COUNTS = (("requests", "REQUESTS"), ("prompt_tokens", "PROMPT"), ("completion_tokens", "COMPLETION"),
                ("cache_hits", "CACHE HITS"), ("errors", "ERRORS"))


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def _fields(args: argparse.Namespace) -> dict[str, Any]:
    """The key's fields given on the command line (absent ones are not sent)."""
    given = {"models": args.models, "use_cases": args.use_cases, "prefer": args.prefer, "rpm": args.rpm,
             "tpm": args.tpm, "budget_tokens": args.budget_tokens, "period": args.period,
             "expires_at": args.expires_at, "cache_namespace": args.cache_namespace}
    fields = {name: value for name, value in given.items() if value is not None}
    return {**fields, **dict.fromkeys(getattr(args, "unset", None) or [])}


def table(header: list[str], rows: list[list[str]]) -> str:
    """Columns as wide as their widest cell, numbers right-aligned."""
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows)]
    numeric = [all(r[i].replace(",", "").isdigit() or r[i] == "-" for r in rows) and bool(rows)
               for i in range(len(header))]
    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if num else c.ljust(w) for c, w, num in zip(cells, widths, numeric)).rstrip()
    return "\n".join(line(cells) for cells in [header, *rows])


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return ",".join(value)
    return str(value)


def _state(record: dict[str, Any]) -> str:
    if record["revoked"]:
        return "revoked"
    expires = record.get("expires_at")
    if expires and datetime.fromisoformat(expires.replace("Z", "+00:00")) <= datetime.now(timezone.utc):
        return "expired"
    return "active"


def keys_table(records: list[dict[str, Any]]) -> str:
    """Each key's record; never a key string (the API lists none)."""
    header = ["NAME", "STATE", "MODELS", "USE CASES", "PREFER", "RPM", "TPM", "BUDGET", "EXPIRES", "CREATED"]
    rows = [[r["name"], _state(r), _cell(r["models"]), _cell(r["use_cases"]), _cell(r["prefer"]), _cell(r["rpm"]),
             _cell(r["tpm"]), f"{r['budget_tokens']}/{r['period']}" if r["budget_tokens"] else "-",
             _cell(r["expires_at"]), r["created_at"][:19]] for r in records]
    return table(header, rows)


def usage_table(rows: list[dict[str, Any]]) -> str:
    """Usage rows, then their total."""
    header = ["START", "KEY", "MODEL", *(label for _, label in USAGE_COUNTS)]
    cells = [[r["start"][:16].replace("T", " "), r["name"], _cell(r["model"]), *(str(r[c]) for c, _ in USAGE_COUNTS)]
             for r in rows]
    total = ["total", "", "", *(str(sum(r[c] for r in rows)) for c, _ in USAGE_COUNTS)]
    return table(header, cells + [total])


def cmd_create(admin: AdminClient, args: argparse.Namespace) -> None:
    record = admin.create(args.name, **_fields(args))
    print(f"key for {record['name']} (shown this once: keep it now):\n{record.pop('key')}\n")
    print(keys_table([record]))


def cmd_list(admin: AdminClient, args: argparse.Namespace) -> None:
    print(keys_table(admin.list()))


def cmd_update(admin: AdminClient, args: argparse.Namespace) -> None:
    print(keys_table([admin.update(args.name, **_fields(args))]))


def cmd_revoke(admin: AdminClient, args: argparse.Namespace) -> None:
    print(keys_table([admin.revoke(args.name)]))


def cmd_usage(admin: AdminClient, args: argparse.Namespace) -> None:
    print(usage_table(admin.usage(args.key_name, args.since, args.until, args.group)))


def _run(command: Callable[[AdminClient, argparse.Namespace], None]) -> Callable[[argparse.Namespace], int]:
    """The command with a client of the front's admin API; the front's refusals printed, as exit status 2."""
    def run(args: argparse.Namespace) -> int:
        admin = AdminClient.at(args.api_url, args.admin_key)
        try:
            command(admin, args)
        except AdminError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except httpx.HTTPError as exc:
            print(f"error: cannot reach the front at {args.api_url}: {exc}", file=sys.stderr)
            return 2
        finally:
            admin.close()
        return 0
    return run


def _front_options() -> argparse.ArgumentParser:
    front = argparse.ArgumentParser(add_help=False)
    front.add_argument("--api-url", default=os.environ.get("TMR_API_URL", DEFAULT_API_URL),
                       help=f"the OpenAI front (default $TMR_API_URL or {DEFAULT_API_URL})")
    front.add_argument("--admin-key", default=os.environ.get("TMR_ADMIN_KEY"),
                       help="the front's admin key (default $TMR_ADMIN_KEY)")
    return front


def _key_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name")
    parser.add_argument("--models", type=_names, help="comma-separated: the only models it may use")
    parser.add_argument("--use-cases", type=_names, help="comma-separated: the only use cases it may use")
    parser.add_argument("--prefer", choices=["quality", "balanced", "cost"], help="the highest `prefer` it gets")
    parser.add_argument("--rpm", type=int, help="requests per minute")
    parser.add_argument("--tpm", type=int, help="tokens per minute")
    parser.add_argument("--budget-tokens", type=int, help="tokens per --period")
    parser.add_argument("--period", choices=["day", "month"], help="the budget's period, UTC (default month)")
    parser.add_argument("--expires-at", help="ISO time (UTC unless it names a zone)")
    parser.add_argument("--cache-namespace", help="share cached answers with the keys given the same (default: its own)")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """`keys` (create, list, update, revoke) and `usage`, on the `tmr` command line."""
    front = _front_options()
    keys = sub.add_parser("keys", help="tenant keys on the OpenAI front (its admin API)")
    actions = keys.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", parents=[front], help="make a key (its key string is printed once)")
    _key_options(create)
    create.set_defaults(func=_run(cmd_create))
    actions.add_parser("list", parents=[front], help="every key (never its key string)").set_defaults(
        func=_run(cmd_list))
    update = actions.add_parser("update", parents=[front], help="change a key's fields (only those given)")
    _key_options(update)
    update.add_argument("--unset", action="append", choices=CLEARABLE, help="clear this field (repeatable)")
    update.set_defaults(func=_run(cmd_update))
    revoke = actions.add_parser("revoke", parents=[front], help="revoke a key, for good")
    revoke.add_argument("name")
    revoke.set_defaults(func=_run(cmd_revoke))
    usage = sub.add_parser("usage", parents=[front], help="what tenant keys used, per model and hour or day")
    usage.add_argument("--key", dest="key_name", metavar="NAME", help="one key's (default: every key's)")
    usage.add_argument("--since", help="ISO time (default 24 h ago)")
    usage.add_argument("--until", help="ISO time (default now)")
    usage.add_argument("--group", choices=["hour", "day"], default="hour")
    usage.set_defaults(func=_run(cmd_usage))
