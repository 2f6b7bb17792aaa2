"""What `tool_choice: "auto"` can be trusted to do on a CPU LLM, measured through the OpenAI front.

Three tools (weather, currency conversion, e-mail); 20 prompts that clearly need one of them and 20
that clearly need none (chat, writing, arithmetic, knowledge), in several languages, greedy. For the
first: how often the model calls a tool, the right one, with arguments that validate against its
parameters (jsonschema); for the second: how often it calls one anyway.

    python scripts/eval_tool_choice.py [--model NAME] [--url host:http_port [--grpc host:grpc_port]] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jsonschema
import openai
from benchlib import cpu_name, server

from launcher import FrontProcess, free_port

LLM = "qwen2_5_coder_1_5b_instruct"  # the CPU profile's model for tools
KEY = "eval-tool-choice"
CURRENCIES = ["USD", "EUR", "INR", "JPY", "GBP"]
TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "The current weather in a city.",
                                      "parameters": {"type": "object", "required": ["city"], "properties": {
                                          "city": {"type": "string"},
                                          "unit": {"enum": ["celsius", "fahrenheit"]}}}}},
    {"type": "function", "function": {"name": "convert_currency",
                                      "description": "Convert an amount of money from one currency to another.",
                                      "parameters": {"type": "object", "required": ["amount", "source", "target"],
                                                     "properties": {"amount": {"type": "number"},
                                                                    "source": {"enum": CURRENCIES},
                                                                    "target": {"enum": CURRENCIES}}}}},
    {"type": "function", "function": {"name": "send_email", "description": "Send an e-mail.",
                                      "parameters": {"type": "object", "required": ["to", "subject", "body"],
                                                     "properties": {"to": {"type": "string"},
                                                                    "subject": {"type": "string"},
                                                                    "body": {"type": "string"}}}}},
]
PARAMETERS = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}
NEEDS_TOOL = [
    ("What's the weather in Paris right now?", "get_weather"),
    ("Is it raining in London today?", "get_weather"),
    ("How hot is it in Delhi at the moment, in celsius?", "get_weather"),
    ("Check the current weather in Tokyo for me.", "get_weather"),
    ("Do I need an umbrella in Seattle right now?", "get_weather"),
    ("Quel temps fait-il à Lyon en ce moment ?", "get_weather"),
    ("¿Qué tiempo hace ahora en Madrid?", "get_weather"),
    ("मुंबई में अभी मौसम कैसा है?", "get_weather"),
    ("Convert 100 USD to EUR.", "convert_currency"),
    ("How many yen is 50 dollars today?", "convert_currency"),
    ("Change 2500 INR into US dollars.", "convert_currency"),
    ("What are 20 pounds in euros at today's rate?", "convert_currency"),
    ("Convertis 80 euros en dollars.", "convert_currency"),
    ("Rechne 300 Euro in Yen um.", "convert_currency"),
    ("Send an email to bob@example.com saying the meeting moved to 3pm.", "send_email"),
    ("Email alice@example.com with the subject 'Invoice' and tell her it is paid.", "send_email"),
    ("Please send a mail to team@example.com: lunch is at noon.", "send_email"),
    ("Write and send an e-mail to hr@example.com asking for a day off on Friday.", "send_email"),
    ("Envoie un e-mail à paul@example.com pour lui dire merci.", "send_email"),
    ("Manda un correo a ana@example.com diciendo que llego tarde.", "send_email"),
]
NO_TOOL = [
    "Write a haiku about autumn leaves.", "What is 12 times 7?", "Who wrote Romeo and Juliet?",
    "Tell me a short joke about cats.", "Explain photosynthesis in one sentence.", "What is the capital of Japan?",
    "Give me three tips for learning Python.", "Translate 'good night' into Spanish.",
    "What does DNA stand for?", "Suggest a name for a bakery.", "How many legs does a spider have?",
    "Describe the colour blue to a child.", "What is a prime number?", "Hello! How are you today?",
    "Résume l'histoire du Petit Prince en une phrase.", "¿Cuál es el río más largo del mundo?",
    "Nenne drei Farben des Regenbogens.", "एक छोटी कविता लिखो।", "Why is the sky blue?",
    "List three healthy breakfast ideas.",
]


def ask(sdk: openai.OpenAI, model: str, prompt: str) -> list:
    answer = sdk.chat.completions.create(model=model, messages=[{"role": "user", "content": prompt}], tools=TOOLS,
                                         tool_choice="auto", temperature=0, max_tokens=96)
    return answer.choices[0].message.tool_calls or []


def validates(call) -> bool:
    try:
        jsonschema.validate(json.loads(call.function.arguments), PARAMETERS[call.function.name])
    except (ValueError, KeyError, jsonschema.ValidationError):
        return False
    return True


def evaluate(sdk: openai.OpenAI, model: str) -> dict:
    with ThreadPoolExecutor(4) as pool:  # more waits past the router's timeout on a busy 2-core machine
        needed = list(pool.map(lambda p: ask(sdk, model, p[0]), NEEDS_TOOL))
        unneeded = list(pool.map(lambda p: ask(sdk, model, p), NO_TOOL))
    called = [calls for calls in needed if calls]
    right = [calls for calls, (_, tool) in zip(needed, NEEDS_TOOL) if calls and calls[0].function.name == tool]
    return {"model": model, "needs_tool": len(NEEDS_TOOL), "called": len(called), "right_tool": len(right),
            "arguments_validate": sum(all(validates(c) for c in calls) for calls in called),
            "no_tool_needed": len(NO_TOOL), "called_anyway": sum(bool(calls) for calls in unneeded),
            "examples": [{"prompt": p, "calls": [(c.function.name, c.function.arguments) for c in calls]}
                         for (p, _), calls in list(zip(NEEDS_TOOL, needed))[:4]]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=LLM, help=f"the model asked (default {LLM})")
    ap.add_argument("--url", help="a running server's HTTP host:port (default: start one)")
    ap.add_argument("--grpc", help="that server's gRPC host:port (default: its HTTP port + 1)")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    with server(args.url, [args.model, "query_classifier", "router"]) as (_, grpc_url, _srv):
        front = FrontProcess(args.grpc or grpc_url, port=free_port(), host="127.0.0.1", api_key=KEY,
                             log_file=Path(tempfile.gettempdir()) / "eval_tool_choice_front.log").start()
        try:
            sdk = openai.OpenAI(base_url=f"{front.url}/v1", api_key=KEY, max_retries=0, timeout=600)
            report = evaluate(sdk, args.model)
        finally:
            front.stop()
    n, m = report["needs_tool"], report["no_tool_needed"]
    print(f"{args.model}, CPU: {cpu_name()}")
    print(f"needs a tool ({n}): called {report['called']}/{n}, right tool {report['right_tool']}/{n}, "
          f"arguments validate {report['arguments_validate']}/{report['called']} of the calls")
    print(f"needs none ({m}): called anyway {report['called_anyway']}/{m}")
    json.dump(report["examples"], sys.stdout, ensure_ascii=False, indent=1)
    print()
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
