"""The routing evaluation's task set and checkers: every task's own right answer passes its checker and
a wrong one fails; a coding answer that loops, eats memory, floods its output, reaches the network,
starts a program, writes outside its directory or exits before its tests is stopped or failed (the
network listener and the file system, observed from outside, see nothing)."""
from __future__ import annotations

import json
import os
import socket
from collections import Counter
from pathlib import Path

import pytest

from model_router.evaluation import checks
from model_router.evaluation.checks import Answer, check
from model_router.evaluation.sandbox import NOBODY, isolation, run_python
from model_router.evaluation.tasks import KINDS, Task, load_tasks, sample

TASKS = load_tasks()


def right_answer(task: Task) -> Answer:
    c = task.check
    return {
        "factual": lambda: Answer(f"I believe it is {c['accept'][0]}."),
        "math": lambda: Answer(f"Working it out step by step, 2 + 3 = 5 first.\nAnswer: {c['number']}"),
        "code": lambda: Answer(f"Here it is:\n```python\n{c['reference']}\n```\nDone."),
        "json": lambda: Answer(json.dumps(c["expect"], ensure_ascii=False)),
        "tool": lambda: Answer("", ((c["name"], json.dumps(c["arguments"], ensure_ascii=False)),)),
    }[task.kind]()


def wrong_answers(task: Task) -> list[Answer]:
    c = task.check
    if task.kind == "factual":
        return [Answer("I do not know."), *(Answer(f"It is {r}.") for r in c.get("reject", [])[:1])]
    if task.kind == "math":
        return [Answer(f"Answer: {c['number'] + 1}"), Answer("I cannot say.")]
    if task.kind == "code":
        head = c["reference"].split(":\n", 1)[0]
        return [Answer(f"```python\n{head}:\n    return None\n```"), Answer("Use a loop.")]
    if task.kind == "json":
        key, value = next(iter(c["expect"].items()))
        bad = not value if isinstance(value, bool) else value + 1 if isinstance(value, (int, float)) else value + " x"
        return [Answer(json.dumps({**c["expect"], key: bad})), Answer("Not JSON at all")]
    key, value = next(iter(c["arguments"].items()))
    bad = value + 1 if isinstance(value, (int, float)) and not isinstance(value, bool) else f"{value} x"
    return [Answer("", ((c["name"], json.dumps({**c["arguments"], key: bad})),)),
            Answer("", (("not_" + c["name"], json.dumps(c["arguments"])),)), Answer("Sure, I will do that.")]


@pytest.mark.parametrize("task", TASKS, ids=lambda t: t.id)
def test_each_tasks_right_answer_passes_and_wrong_answers_fail(task: Task) -> None:
    assert check(task, right_answer(task)).right, check(task, right_answer(task))
    for wrong in wrong_answers(task):
        assert not check(task, wrong).right, (wrong, check(task, wrong))


def test_the_set_is_large_multilingual_and_split() -> None:
    assert len(TASKS) >= 400
    labels = Counter(t.label for t in TASKS)
    assert sum(n for lang, n in labels.items() if lang != "en") >= 0.25 * len(TASKS), labels
    assert labels["hi"] and labels["hi-latn"] and len(set(labels) - {"en", "hi", "hi-latn"}) >= 3, labels
    for kind in KINDS:
        splits = Counter(t.split for t in TASKS if t.kind == kind)
        assert splits["learn"] and splits["heldout"], (kind, splits)
        assert {t.complexity for t in TASKS if t.kind == kind} == {"low", "medium", "high"}


def test_a_quick_sample_sees_every_kind_and_both_splits() -> None:
    picked = sample(TASKS, 12)
    assert len(picked) == 12 and {t.kind for t in picked} == set(KINDS)
    assert {t.split for t in picked} == {"learn", "heldout"}


def test_factual_accepts_variants_across_scripts_and_refuses_the_classic_confusion() -> None:
    task = next(t for t in TASKS if t.kind == "factual" and "Canberra" in t.check["accept"])
    assert check(task, Answer("The capital is CANBERRA.")).right
    assert check(task, Answer("Canberra, not Sydney.")).right  # the right one first, the confusion named after
    assert not check(task, Answer("Sydney")).right
    assert not check(task, Answer("Sydney. Well, some say Canberra.")).right
    assert not check(task, Answer("Canberras")).right  # a whole word, not a prefix


def test_digits_of_any_script_match_an_accepted_number() -> None:
    task = Task(id="t", kind="factual", language="hi", complexity="low", prompt="?", check={"accept": ["7"]})
    assert check(task, Answer("एक सप्ताह में ७ दिन होते हैं।")).right   # Devanagari seven
    assert check(task, Answer("সপ্তাহে ৭ দিন")).right                 # Bengali seven
    assert not check(task, Answer("एक सप्ताह में ८ दिन")).right


def test_a_number_is_not_found_inside_a_longer_one() -> None:
    task = Task(id="t", kind="factual", language="en", complexity="low", prompt="?", check={"accept": ["0", "zero"]})
    assert check(task, Answer("It freezes at 0 degrees Celsius.")).right
    assert not check(task, Answer("It freezes at 32.0 degrees Fahrenheit.")).right


def test_a_json_answer_must_follow_its_schema() -> None:
    task = next(t for t in TASKS if t.kind == "json")
    extra = {**task.check["expect"], "also": "something the schema forbids"}
    verdict = check(task, Answer(json.dumps(extra)))
    assert not verdict.right and "schema" in verdict.why, verdict


def test_numbers_in_indic_digits_and_with_thousands_separators() -> None:
    task = Task(id="t", kind="math", language="hi", complexity="low", prompt="?", check={"number": 1250})
    assert check(task, Answer("कुल १२५० रुपये\nAnswer: १२५०")).right
    assert check(task, Answer("It comes to 1,250 in all.")).right
    assert check(task, Answer("Answer: 1000 + 250 = 1250")).right  # the result, last on the answer's line
    assert not check(task, Answer("Answer: 125")).right


CODE = Task(id="c", kind="code", language="en", complexity="low", prompt="?",
            check={"entry": "f", "tests": "assert f(2) == 4", "reference": "def f(x):\n    return 2 * x"})


def test_a_looping_answer_is_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(checks, "CODE_TIMEOUT_S", 2.0)
    verdict = check(CODE, Answer("```python\ndef f(x):\n    while True:\n        pass\n```"))
    assert not verdict.right and "stopped" in verdict.why, verdict


def test_an_answer_that_eats_memory_or_floods_its_output_is_stopped() -> None:
    run = run_python("x = bytearray(4 * 2**30)", timeout_s=10, memory_mb=256)
    assert not run.ok and "MemoryError" in run.why, run
    run = run_python("while True:\n    print('x' * 1000)", timeout_s=20)
    assert not run.ok and ("output limit" in run.why or "File too large" in run.why), run


@pytest.mark.parametrize("reach", [
    "import socket\n    socket.create_connection(('127.0.0.1', PORT), timeout=2)",
    "import urllib.request\n    urllib.request.urlopen('http://127.0.0.1:PORT/', timeout=2)",
    "__import__('_socket').socket().connect(('127.0.0.1', PORT))",
    # The answer tampers with what it can reach of the sandbox first.
    "import sys\n    m = sys.modules['__main__']\n"
    "    [setattr(m, k, None) for k in list(vars(m)) if k[0] != '_' or k[1] != '_']"
    "\n    import socket\n    socket.create_connection(('127.0.0.1', PORT), timeout=2)",
])
def test_an_answer_that_reaches_the_network_is_stopped_and_connects_nowhere(reach: str) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.settimeout(0.5)
        code = f"def f(x):\n    {reach.replace('PORT', str(listener.getsockname()[1]))}\n    return 2 * x"
        verdict = check(CODE, Answer(f"```python\n{code}\n```"))
        assert not verdict.right and "refused" in verdict.why, verdict
        with pytest.raises(socket.timeout):
            listener.accept()


def test_an_answer_that_starts_a_program_is_stopped(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    for start in (f"import os\n    os.system('touch {marker}')",
                  f"import subprocess\n    subprocess.run(['touch', '{marker}'])"):
        verdict = check(CODE, Answer(f"```python\ndef f(x):\n    {start}\n    return 2 * x\n```"))
        assert not verdict.right and "refused" in verdict.why, verdict
    assert not marker.exists()


def test_an_answer_writes_only_in_its_own_directory(tmp_path: Path) -> None:
    kept = tmp_path / "kept.txt"
    kept.write_text("mine")
    for harm in (f"open('{tmp_path / 'new.txt'}', 'w').write('x')", f"import os; os.remove('{kept}')",
                 f"import shutil; shutil.rmtree('{tmp_path}')"):
        run = run_python(harm)
        assert not run.ok and "refused" in run.why, (harm, run)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.txt"] and kept.read_text() == "mine"
    assert run_python("open('scratch.txt', 'w').write('x')\nassert open('scratch.txt').read() == 'x'").ok


def test_an_answer_that_exits_before_its_tests_fails() -> None:
    for early in ("import sys\nsys.exit(0)", "import os\nos._exit(0)", "raise SystemExit"):
        run = run_python(f"def f(x):\n    return 0\n{early}", "assert f(2) == 4")
        assert not run.ok and "exited before" in run.why, (early, run)


def test_a_demo_under_main_does_not_run_and_the_answer_passes() -> None:
    demo = "def f(x):\n    return 2 * x\n\nif __name__ == '__main__':\n    print(f(int(input())))"
    assert check(CODE, Answer(f"```python\n{demo}\n```")).right


def test_the_sandbox_has_no_network_interface_where_the_machine_allows() -> None:
    prefix, what = isolation()
    if not prefix:
        pytest.skip(f"this machine allows no network namespace: {what}")
    probe = "import os\nnames = [l.split(':')[0].strip() for l in open('/proc/net/dev').read().splitlines()[2:]]\n"
    assert run_python(probe + "assert names == ['lo'], names").ok
    if os.geteuid() == 0:
        assert run_python(f"import os\nassert os.getuid() == {NOBODY}").ok


def test_a_correct_answer_runs_in_the_sandbox() -> None:
    assert check(CODE, Answer("```python\ndef f(x):\n    import math\n    return int(math.pow(x, 1)) * 2\n```")).right
