"""Run untrusted, model-generated Python in a locked-down child process.

    result = run_python("print(input()[::-1])", stdin="abc\\n", timeout=0.5)
    result.status, result.stdout        # ("ok", "cba\\n")

Every run starts a fresh interpreter (the *supervisor*, this file run as a script) that
forks the *program* process and watches it. Two isolation levels; `isolation="auto"` uses
the strongest one this machine allows (probed once per process, see `available_isolation`):

"namespaces" (Linux with unprivileged user namespaces; what this machine has):
  - new user, mount, network, PID, IPC and UTS namespaces. The program is PID 1 of its PID
    namespace: when it exits or is killed, the kernel kills every process it started,
    double-forked daemons included, and it cannot see or signal anything outside.
  - a new root: an empty read-only tmpfs holding read-only bind mounts of /usr (and /bin,
    /lib*, /sbin), the interpreter's installation and /dev/{null,zero,random,urandom}, a
    fresh /proc, and /work, a size-capped tmpfs that is the only writable place (the
    program's cwd, HOME and TMPDIR). The rest of the host filesystem (home directories,
    virtualenvs and their site-packages, dataset caches, the tests) is not visible at all.
  - no network: the new network namespace has no interfaces up.
  - when the evaluator runs as root, the sandbox's root maps to the host's `nobody`, so
    RLIMIT_NPROC applies (the kernel exempts real root) and host files keep their owners.
  - all capabilities dropped (bounding set too) and no_new_privs set before user code runs.

"process" (fallback: no user namespaces, e.g. a container whose seccomp profile forbids them):
  - the program gets its own session, the supervisor is a child subreaper, and after the
    program ends (or at the deadline) every process of its session and every orphan that
    was re-parented to the supervisor is SIGKILLed, so a detached grandchild dies too.
  - when the evaluator is root the program drops to `nobody` (host files become read-only
    to it, RLIMIT_NPROC applies); otherwise it runs as the evaluator's user and file writes
    outside its work dir are refused only by the audit hook below.

Both levels:
  - file creation is reported: after the program ends, the supervisor lists its work dir
    (the only place it can write) and `SandboxResult.wrote_files` says whether anything was
    left there (or the dir was made unreadable or removed). Writes are not refused, so a
    program that needs a scratch file runs as usual; callers decide what a write means
    (the code tasks count it as a failure, as Appendix E.1 does). A file created and deleted
    again within the run leaves no trace and is not reported.
  - resource limits: RLIMIT_AS (memory_mb), RLIMIT_CPU (a backstop for the wall clock),
    RLIMIT_NPROC (max_processes), RLIMIT_FSIZE (file_size_mb), RLIMIT_CORE 0, RLIMIT_NOFILE;
  - a wall-clock deadline measured from the moment user code starts (interpreter start-up
    and sandbox set-up excluded), enforced by the supervisor, with an outer deadline in the
    evaluator in case the supervisor itself is stuck;
  - a scrubbed environment (PATH, LANG, LC_ALL, HOME, TMPDIR only; no parent secrets);
  - stdout/stderr capped at `output_limit` bytes each (the run is killed past the cap);
  - the guard (`guard=True`, the default), two layers installed just before user code:
    a seccomp filter (kernel-enforced, x86_64 and aarch64) refusing process creation other
    than threads, exec, sockets, ptrace and process_vm_*, signals to other processes,
    unshare/setns/mount and io_uring; and an audit hook (Python-level) refusing the same
    from Python plus ctypes, `_posixsubprocess`, writes/renames/deletes outside the work
    dir and opening other processes' /proc entries. An audit hook is not a security
    boundary (native code can skip it, hence no ctypes); the seccomp filter is.

The program runs as `__main__` under `python -I -S`: the standard library only (no
site-packages), `exit()`/`quit()` provided, stdin from `stdin`.

What is not guaranteed: CPU and memory isolation between concurrent runs beyond the
rlimits (no cgroups); protection against kernel exploits; secrecy of world-readable files
under /usr and the interpreter's installation; and in "process" mode as a non-root user,
file writes the audit hook does not see (e.g. `os.mkfifo`, C extensions that open files
themselves) and reads of anything that user can read (with `guard=False` that mode
protects nothing beyond the rlimits and the sweep). In "process" mode as root, modules
outside `_PRELOAD` may be unimportable if `nobody` cannot read the interpreter's files.
Tested here: the hostile suite in tests/test_sandbox.py, with the guard on, with it off
(namespaces alone), and in "process" mode.

Function-call tests (`run_function_tests`) never run the tests in the same process as the
program: a separate sandboxed *judge* runs the test code and calls the program's functions
over a pipe, passing only plain data (None, bool, int, float, str, bytes, complex, list,
tuple, dict, set, frozenset) both ways. The program therefore cannot patch the tests, fake
an `__eq__`, print a fake verdict or exit early to look successful: the verdict is printed
by the judge, and a call that gets no answer is a failed test. The time limit is per test:
the judge gives each test statement `timeout` seconds of waiting for the program's answers
(the program's module-level code counts toward the first call); a test that runs out fails,
and so does every later test, since the program is still busy (it is killed once the judge
is done). The supervisor's deadline for the whole program is a backstop.
"""

# The first half of this file is the in-sandbox code: the evaluator runs this file as a
# script (`python -I -S -B sandbox.py JOB`), and `_boot` must not pay for heavy imports, so
# the evaluator-side imports come after the `if __name__ == "__main__"` block below.
from __future__ import annotations

import marshal
import os
import select
import sys
import time

# Linux constants (include/uapi/linux/{sched,mount,prctl,capability}.h).
_CLONE_NEWNS, _CLONE_NEWUTS, _CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
_CLONE_NEWUSER, _CLONE_NEWPID, _CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 1, 2, 4, 8
_MS_REMOUNT, _MS_BIND, _MS_REC, _MS_PRIVATE = 32, 4096, 16384, 1 << 18
_MOUNT_ATTR_RDONLY, _MOUNT_ATTR_NOSUID, _MOUNT_ATTR_NODEV = 1, 2, 4
_SYS_MOUNT_SETATTR, _AT_FDCWD, _AT_RECURSIVE = 442, -100, 0x8000
_PR_SET_PDEATHSIG, _PR_SET_DUMPABLE, _PR_CAPBSET_DROP = 1, 4, 24
_PR_SET_CHILD_SUBREAPER, _PR_SET_NO_NEW_PRIVS, _PR_CAP_AMBIENT = 36, 38, 47
_SIGKILL, _SIGTERM, _SIGXCPU = 9, 15, 24
_NOBODY = 65534

# Modules preloaded before dropping to `nobody` in "process" mode as root, for an
# interpreter installed where `nobody` cannot read (e.g. pyenv under /root).
_PRELOAD = (
    "math", "cmath", "itertools", "functools", "collections", "heapq", "bisect", "re",
    "string", "random", "statistics", "fractions", "decimal", "datetime", "operator", "copy",
    "typing", "json", "array", "io", "textwrap", "unicodedata", "hashlib", "traceback",
    "dataclasses", "enum", "struct", "calendar", "queue", "threading", "numbers", "types",
)
_GUARD_BLOCKED_IMPORTS = frozenset({"ctypes", "_ctypes", "_posixsubprocess", "cffi", "_cffi_backend"})
_GUARD_BLOCKED_EVENTS = frozenset({
    "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty",
    "subprocess.Popen", "os.kill", "os.killpg", "signal.pthread_kill", "os.symlink", "os.link",
    "gc.get_objects", "gc.get_referrers", "gc.get_referents",
})
_GUARD_WRITE_EVENTS = frozenset({
    "os.rename", "os.mkdir", "os.rmdir", "os.remove", "os.chmod", "os.chown", "os.truncate",
    "os.utime", "os.setxattr", "os.removexattr", "shutil.copyfile", "shutil.copymode",
    "shutil.copystat", "shutil.copytree", "shutil.move", "shutil.rmtree", "shutil.chown",
})
_FRAME_LIMIT = 64 << 20  # largest message between judge and program

# Syscalls the seccomp part of the guard refuses (EPERM), per architecture: process
# creation other than threads, exec, sockets, tracing, signals to other processes, new
# namespaces/mounts and io_uring (whose requests bypass seccomp).
_SECCOMP = {
    "x86_64": {"arch": 0xC000003E, "clone": 56, "clone3": 435, "kill": 62, "tgkill": 234, "deny": (
        57, 58, 59, 322, 41, 53, 101, 310, 311, 200, 129, 297, 424, 434, 438, 272, 308, 165, 425, 426, 427, 323)},
    "aarch64": {"arch": 0xC00000B7, "clone": 220, "clone3": 435, "kill": 129, "tgkill": 131, "deny": (
        221, 281, 198, 199, 117, 270, 271, 130, 138, 240, 424, 434, 438, 97, 268, 40, 425, 426, 427, 282)},
}


def _libc():
    import ctypes

    return ctypes, ctypes.CDLL(None, use_errno=True)


def _call(ctypes, ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _prctl_if_linux(option: int, value: int) -> None:
    """prctl(2) where it exists; "process" mode degrades to what POSIX offers elsewhere."""
    prctl = getattr(_libc()[1], "prctl", None)
    if prctl is not None:
        prctl(option, value, 0, 0, 0)


def _boot(job_path: str) -> None:
    """The supervisor: set up isolation, fork the program, enforce the deadline, report."""
    import resource  # noqa: F401 - imported while the interpreter's files are still reachable
    import signal

    with open(job_path, "rb") as f:
        job = marshal.load(f)
    os.unlink(job_path)  # the program must not read its job (the judge's holds the tests)
    report_fd = job["report_fd"]
    ready_r, ready_w = os.pipe()
    binds: list = []
    try:
        if job["isolation"] == "namespaces":
            binds = _enter_namespaces(job)
        else:
            _prctl_if_linux(_PR_SET_CHILD_SUBREAPER, 1)  # orphans come back to us
            _prctl_if_linux(_PR_SET_DUMPABLE, 0)  # our /proc entries (report fd) unreachable
        sys.stdout.flush()
        child = os.fork()
    except BaseException as exc:  # any set-up failure is reported, not raised
        _report(report_fd, "error", None, 0.0, f"sandbox set-up failed: {exc!r}")
        os._exit(0)
    if child == 0:
        os.close(ready_r)
        try:
            _prepare_program(job, binds, ready_w)
        except BaseException as exc:
            os.write(ready_w, b"E" + repr(exc).encode()[:2000])
            os._exit(126)
        _run_program(job)  # never returns
    os.close(ready_w)
    for _, _, fd in binds:
        os.close(fd)
    for fd in job["keep_fds"]:
        os.close(fd)  # so the other end sees EOF as soon as the program dies

    stop = []

    def on_term(signum, frame):  # the evaluator asks us to stop (output cap reached)
        stop.append(signum)
        try:
            os.kill(child, _SIGKILL)
        except ProcessLookupError:
            pass

    signal.signal(signal.SIGTERM, on_term)
    status, code, duration, error = _watch(child, ready_r, job, stop)
    if job["isolation"] != "namespaces":
        _sweep(child)
    # Everything the program started is dead now (PID namespace, or the sweep), so nothing
    # writes any more. In "namespaces" mode the work tmpfs is mounted in our mount namespace too.
    work = job["root"] + "/work" if job["isolation"] == "namespaces" else job["work"]
    try:
        wrote = bool(os.listdir(work))
    except OSError:  # removed, or made unreadable: the program changed it
        wrote = True
    _report(report_fd, status, code, duration, error, wrote)
    os._exit(0)


def _report(fd: int, status: str, code: int | None, duration: float, error: str, wrote: bool = False) -> None:
    text = f"{status}\n{'' if code is None else code}\n{duration!r}\n{int(wrote)}\n{error}"
    os.write(fd, text.encode("utf-8", "replace"))


def _enter_namespaces(job: dict) -> list:
    """Unshare every namespace; return the O_PATH fds the program will bind-mount."""
    ctypes, libc = _libc()
    flags = _CLONE_NEWUSER | _CLONE_NEWNS | _CLONE_NEWNET | _CLONE_NEWPID | _CLONE_NEWIPC | _CLONE_NEWUTS
    as_root = os.geteuid() == 0
    if as_root:
        # Root may map the sandbox's root to `nobody`, but only from outside the new user
        # namespace: a helper forked before unshare writes the maps.
        go_r, go_w = os.pipe()
        done_r, done_w = os.pipe()
        helper = os.fork()
        if helper == 0:
            os.read(go_r, 1)
            try:
                parent = os.getppid()
                for name in ("uid_map", "gid_map"):
                    with open(f"/proc/{parent}/{name}", "w") as f:
                        f.write(f"0 {_NOBODY} 1")
                os.write(done_w, b"k")
            except BaseException as exc:
                os.write(done_w, repr(exc).encode()[:500])
            os._exit(0)
        _call(ctypes, libc.unshare(flags), "unshare")
        os.write(go_w, b"g")
        answer = os.read(done_r, 600)
        os.waitpid(helper, 0)
        if answer != b"k":
            raise OSError(f"uid map: {answer.decode(errors='replace')}")
    else:
        uid, gid = os.geteuid(), os.getegid()
        _call(ctypes, libc.unshare(flags), "unshare")
        for name, text in (("setgroups", "deny"), ("uid_map", f"0 {uid} 1"), ("gid_map", f"0 {gid} 1")):
            with open(f"/proc/self/{name}", "w") as f:
                f.write(text)
    # Open bind sources now: still in the new mount namespace and, as root, still able to
    # traverse root-only directories such as /root/.pyenv.
    binds = []
    for kind, path, _ in job["plan"]:
        if kind in ("dir", "file"):
            try:
                binds.append((kind, path, os.open(path, os.O_PATH)))
            except OSError:
                pass
    if as_root:
        os.setresgid(0, 0, 0)
        os.setgroups([])
        os.setresuid(0, 0, 0)  # now host uid `nobody`
    return binds


def _mount(ctypes, libc, source, target, fstype, flags, data=None) -> None:
    def enc(text):
        return None if text is None else text.encode()

    ret = libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data))
    _call(ctypes, ret, f"mount {target}")


def _bind_read_only(ctypes, libc, fd: int, target: str, device: bool) -> None:
    _mount(ctypes, libc, f"/proc/self/fd/{fd}", target, None, _MS_BIND | _MS_REC)

    class MountAttr(ctypes.Structure):
        _fields_ = [(n, ctypes.c_uint64) for n in ("attr_set", "attr_clr", "propagation", "userns_fd")]

    attr = MountAttr(_MOUNT_ATTR_RDONLY | _MOUNT_ATTR_NOSUID | (0 if device else _MOUNT_ATTR_NODEV), 0, 0, 0)
    ret = libc.syscall(_SYS_MOUNT_SETATTR, _AT_FDCWD, target.encode(), _AT_RECURSIVE,
                       ctypes.byref(attr), ctypes.sizeof(attr))
    if ret != 0:  # kernel < 5.12: remount the top mount, keeping the flags the kernel locked
        st = os.statvfs(target).f_flag
        keep = st & (_MS_NOSUID | _MS_NODEV | _MS_NOEXEC | 1024 | 2048)
        keep |= (1 << 21) if st & 4096 else 0  # ST_RELATIME -> MS_RELATIME
        _mount(ctypes, libc, None, target, None, _MS_REMOUNT | _MS_BIND | _MS_RDONLY | keep)


def _new_root(job: dict, binds: list) -> None:
    """Build the read-only root described in the module docstring and chroot into it."""
    ctypes, libc = _libc()
    root = job["root"]
    _mount(ctypes, libc, None, "/", None, _MS_REC | _MS_PRIVATE)
    _mount(ctypes, libc, "tmpfs", root, "tmpfs", _MS_NOSUID | _MS_NODEV, "mode=0755,size=1m")
    fds = {path: (kind, fd) for kind, path, fd in binds}
    for kind, path, link in job["plan"]:
        target = root + path
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if kind == "symlink":
            os.symlink(link, target)
        elif path in fds:
            if kind == "dir":
                os.makedirs(target, exist_ok=True)
            else:
                open(target, "w").close()
            _bind_read_only(ctypes, libc, fds[path][1], target, device=path.startswith("/dev/"))
    os.mkdir(root + "/proc")
    try:  # a fresh /proc shows only the sandbox's processes; refused in some containers
        _mount(ctypes, libc, "proc", root + "/proc", "proc", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC)
    except OSError:
        pass
    os.mkdir(root + "/work")
    _mount(ctypes, libc, "tmpfs", root + "/work", "tmpfs", _MS_NOSUID | _MS_NODEV,
           f"mode=0700,size={job['work_mb']}m")
    _mount(ctypes, libc, None, root, None, _MS_REMOUNT | _MS_BIND | _MS_RDONLY | _MS_NOSUID | _MS_NODEV)
    os.chroot(root)
    os.chdir("/work")


def _drop_capabilities() -> None:
    ctypes, libc = _libc()
    libc.prctl(_PR_CAP_AMBIENT, 4, 0, 0, 0)  # PR_CAP_AMBIENT_CLEAR_ALL
    for cap in range(64):
        libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0)

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [(n, ctypes.c_uint32) for n in ("effective", "permitted", "inheritable")]

    _call(ctypes, libc.capset(ctypes.byref(Header(0x20080522, 0)), (Data * 2)()), "capset")
    _call(ctypes, libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")


def _install_seccomp() -> None:
    """Kernel-enforced part of the guard (see _SECCOMP); a no-op on other architectures."""
    table = _SECCOMP.get(os.uname().machine)
    if table is None:
        return
    ctypes, libc = _libc()
    ld, jeq, jge, jset, ret = 0x20, 0x15, 0x35, 0x45, 0x06
    allow, eperm, enosys = 0x7FFF0000, 0x00050001, 0x00050026
    me = os.getpid()
    prog = [(ld, 0, 0, 4), (jeq, 1, 0, table["arch"]), (ret, 0, 0, eperm),  # foreign ABI: refuse
            (ld, 0, 0, 0), (jge, 0, 1, 0x40000000), (ret, 0, 0, eperm)]  # x32 ABI: refuse
    for nr in table["deny"]:
        prog += [(jeq, 0, 1, nr), (ret, 0, 0, eperm)]
    prog += [(jeq, 0, 1, table["clone3"]), (ret, 0, 0, enosys)]  # glibc then uses clone
    prog += [(jeq, 0, 4, table["clone"]), (ld, 0, 0, 16), (jset, 0, 1, 0x10000),  # CLONE_THREAD
             (ret, 0, 0, allow), (ret, 0, 0, eperm)]
    prog += [(jeq, 0, 5, table["kill"]), (ld, 0, 0, 16), (jeq, 2, 0, me), (jeq, 1, 0, 0),
             (ret, 0, 0, eperm), (ret, 0, 0, allow)]
    prog += [(jeq, 0, 4, table["tgkill"]), (ld, 0, 0, 16), (jeq, 1, 0, me), (ret, 0, 0, eperm), (ret, 0, 0, allow)]
    prog += [(ret, 0, 0, allow)]

    class Filter(ctypes.Structure):
        _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]

    class Program(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(Filter))]

    filters = (Filter * len(prog))(*[Filter(*ins) for ins in prog])
    _call(ctypes, libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    _call(ctypes, libc.prctl(22, 2, ctypes.byref(Program(len(prog), filters)), 0, 0), "seccomp")  # FILTER mode


def _prepare_program(job: dict, binds: list, ready_w: int) -> None:
    """In the forked program process, before any user code: isolate, limit, signal ready."""
    import resource

    os.setsid()  # own session (and process group): the sweep and killpg find everything
    namespaces = job["isolation"] == "namespaces"
    _prctl_if_linux(_PR_SET_PDEATHSIG, _SIGKILL)
    if namespaces:
        _new_root(job, binds)
        for _, _, fd in binds:
            os.close(fd)
        nproc = job["max_processes"] + 1  # counted per user namespace; the supervisor is in it too
    else:
        if os.geteuid() == 0:
            for name in _PRELOAD:
                try:
                    __import__(name)
                except ImportError:
                    pass
            os.setgroups([])
            os.setresgid(_NOBODY, _NOBODY, _NOBODY)
            os.setresuid(_NOBODY, _NOBODY, _NOBODY)
        os.chdir(job["work"])
        # Counted per real user here: allow what the user runs now plus the program's share.
        nproc = job["max_processes"] + _count_processes_of(os.getuid())
    keep = sorted({0, 1, 2, ready_w, *job["keep_fds"]})
    top = min(resource.getrlimit(resource.RLIMIT_NOFILE)[0], 1 << 20)
    for low, high in zip(keep, keep[1:] + [max(top, keep[-1] + 1)]):
        os.closerange(low + 1, high)
    cpu = int(job["timeout"]) + 1
    for limit, value in (
        (resource.RLIMIT_AS, job["memory_mb"] << 20),
        (resource.RLIMIT_CPU, (cpu, cpu + 1)),
        (resource.RLIMIT_NPROC, nproc),
        (resource.RLIMIT_FSIZE, job["file_size_mb"] << 20),
        (resource.RLIMIT_CORE, 0),
        (resource.RLIMIT_NOFILE, 256),
    ):
        resource.setrlimit(limit, value if isinstance(value, tuple) else (value, value))
    if namespaces:
        _drop_capabilities()
    if job["seccomp"]:
        _install_seccomp()
    for name in ("ctypes", "_ctypes", "ctypes._endian"):
        sys.modules.pop(name, None)  # a later `import ctypes` must pass the guard's import check
    if job["serve"] is not None:  # wait for the judge: the clock starts when the tests do
        if _read_frame(job["serve"][0]) is None:
            raise OSError("judge went away before the start")
        _write_frame(job["serve"][1], b"{}")  # and tell it we are set up: its per-test clocks start now
    os.write(ready_w, b"R")
    os.close(ready_w)


def _count_processes_of(uid: int) -> int:
    count = 0
    for name in os.listdir("/proc") if os.path.isdir("/proc") else []:
        try:
            count += name.isdigit() and os.stat(f"/proc/{name}").st_uid == uid
        except OSError:
            pass
    return count


def _watch(child: int, ready_r: int, job: dict, stop: list) -> tuple[str, int | None, float, str]:
    """Wait for ready, then for exit until the deadline. Returns (status, code, duration, error)."""
    readable, _, _ = select.select([ready_r], [], [], job["startup_timeout"])
    message = os.read(ready_r, 4096) if readable else b""
    if message != b"R":
        _kill_and_reap(child)
        error = message[1:].decode(errors="replace") or "the program did not start in time"
        return "error", None, 0.0, error
    start = time.monotonic()
    deadline = start + job["timeout"]
    pidfd = os.pidfd_open(child) if hasattr(os, "pidfd_open") else None
    timed_out = False
    while True:
        pid, wait_status = os.waitpid(child, os.WNOHANG)
        if pid:
            break
        left = deadline - time.monotonic()
        if left <= 0 or stop:
            timed_out = not stop
            _kill_and_reap(child)
            break
        if pidfd is not None:
            select.select([pidfd], [], [], left)
        else:
            time.sleep(min(left, 0.005))
    duration = time.monotonic() - start
    if timed_out:
        return "timeout", None, duration, ""
    if stop:
        return "killed", None, duration, "stopped by the evaluator"
    code = os.waitstatus_to_exitcode(wait_status)
    if code == -_SIGXCPU:
        return "timeout", code, duration, "CPU time limit"
    return ("ok" if code == 0 else "failed"), code, duration, ""


def _kill_and_reap(pid: int) -> None:
    try:
        os.kill(pid, _SIGKILL)
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass
    except ProcessLookupError:
        pass


def _sweep(sid: int) -> None:
    """Kill what the program left behind: its session, and orphans re-parented to us."""
    me = os.getpid()
    for _ in range(200):
        victims = []
        try:
            names = os.listdir("/proc")
        except OSError:
            return
        for name in names:
            if not name.isdigit():
                continue
            try:
                with open(f"/proc/{name}/stat", "rb") as f:
                    fields = f.read().rsplit(b")", 1)[1].split()
            except OSError:
                continue
            state, ppid, session = fields[0], int(fields[1]), int(fields[3])
            if state != b"Z" and (session == sid or ppid == me) and int(name) != me:
                victims.append(int(name))
        for pid in victims:
            try:
                os.kill(pid, _SIGKILL)
            except OSError:
                pass
        while True:  # reap whatever died (our children and re-parented orphans)
            try:
                if os.waitpid(-1, os.WNOHANG)[0] == 0:
                    break
            except ChildProcessError:
                break
        if not victims:
            return
        time.sleep(0.002)


def _run_program(job: dict) -> None:
    """Execute the user code as __main__ (or as a module serving calls); exit the process."""
    import builtins

    if not hasattr(builtins, "exit"):  # `python -S` skips `site`, which defines exit() and quit()
        def exit(code=None):
            raise SystemExit(code)

        builtins.exit = builtins.quit = exit
    module = type(sys)(job["module_name"])
    module.__dict__["__builtins__"] = builtins
    sys.modules["__main__"] = module
    sys.argv = ["solution.py"]
    if job["audit"]:
        _install_guard(os.getcwd(), job["isolation"] == "namespaces")
    code = 0
    try:
        if job["judge"] is not None:
            _judge(job["judge"])
        else:
            exec(compile(job["code"], "solution.py", "exec"), module.__dict__)
        if job["serve"] is not None:
            exec(compile(job["serve_setup"], "test_setup.py", "exec"), module.__dict__)
            _serve(module.__dict__, *job["serve"])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if not isinstance(exc.code, int) and exc.code is not None:
            print(exc.code, file=sys.stderr)
    except BaseException:  # the program's own error: print it like python does
        code = 1
        try:
            import traceback

            traceback.print_exc()
        except BaseException:
            pass
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass
    os._exit(code & 0xFF)


def _install_guard(work: str, namespaces: bool) -> None:
    """The audit hook described in the module docstring; it holds only immutable state."""
    getcwd, fspath, getpid = os.getcwd, os.fspath, os.getpid
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
    blocked_imports, blocked_events, write_events = _GUARD_BLOCKED_IMPORTS, _GUARD_BLOCKED_EVENTS, _GUARD_WRITE_EVENTS
    prefix = work.rstrip("/") + "/"

    def inside(path) -> bool:
        # Pure string work on purpose: user code can monkeypatch os.path but not str methods.
        if isinstance(path, int):
            return True
        path = fspath(path)
        if isinstance(path, bytes):
            path = path.decode("utf-8", "surrogateescape")
        if not path.startswith("/"):
            path = getcwd() + "/" + path
        parts: list = []
        for part in path.split("/"):
            if part == "..":
                if parts:
                    parts.pop()
            elif part and part != ".":
                parts.append(part)
        return ("/" + "/".join(parts) + "/").startswith(prefix)

    def proc_of_other(path) -> bool:
        if not isinstance(path, str) or not path.startswith("/proc/"):
            return False
        entry = path[6:].split("/", 1)[0]
        return entry.isdigit() and int(entry) != getpid()

    def hook(event: str, args: tuple) -> None:
        if event == "open":
            path, mode, flags = args
            if isinstance(path, int):
                return
            if proc_of_other(path):
                raise PermissionError(f"sandbox: reading {path} is not allowed")
            writes = (mode is not None and any(c in mode for c in "wax+")) or bool(flags & write_flags)
            # os.open (mode None) may take a dir_fd the event does not show: keep dir fds inside.
            if (writes or mode is None) and not inside(path):
                raise PermissionError(f"sandbox: {path} is outside the work directory")
        elif event in write_events:
            for arg in args:
                if isinstance(arg, (str, bytes, os.PathLike)) and not inside(arg):
                    raise PermissionError(f"sandbox: {event} outside the work directory")
        elif event == "import":
            if args[0].split(".")[0] in blocked_imports:
                raise ImportError(f"sandbox: module {args[0]} is not available")
        elif event in blocked_events or event.startswith(("socket.", "ctypes.")):
            raise PermissionError(f"sandbox: {event} is not allowed")

    if not namespaces:  # no PID namespace to hide other processes: remove pidfd signalling
        import signal

        for module, name in ((os, "pidfd_open"), (signal, "pidfd_send_signal")):
            if hasattr(module, name):
                delattr(module, name)
    sys.addaudithook(hook)


# ---- judge <-> program protocol: length-prefixed JSON frames of plain data ----------------

def _read_exact(fd: int, n: int) -> bytes | None:
    chunks, got = [], 0
    while got < n:
        chunk = os.read(fd, min(n - got, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _read_frame(fd: int) -> bytes | None:
    head = _read_exact(fd, 4)
    if head is None:
        return None
    size = int.from_bytes(head, "big")
    if size > _FRAME_LIMIT:
        raise ValueError("message too large")
    return _read_exact(fd, size)


def _write_frame(fd: int, data: bytes) -> None:
    view = memoryview(len(data).to_bytes(4, "big") + data)
    while view:
        view = view[os.write(fd, view):]


def _encode(value, refs: dict | None = None, depth: int = 0):
    """Plain data -> JSON-able tags. The judge encodes strictly; the program side is lenient."""
    if depth > 200:
        raise ValueError("value nested too deeply")
    t = type(value)
    if value is None or t is bool or t is int or t is str:
        return value
    if t is float:
        return value if value == value and value not in (float("inf"), float("-inf")) else {"f": repr(value)}
    if t is list:
        return [_encode(v, refs, depth + 1) for v in value]
    if t is tuple:
        return {"t": [_encode(v, refs, depth + 1) for v in value]}
    if t is dict:
        return {"d": [[_encode(k, refs, depth + 1), _encode(v, refs, depth + 1)] for k, v in value.items()]}
    if t is set or t is frozenset:
        return {"s" if t is set else "z": [_encode(v, refs, depth + 1) for v in value]}
    if t is bytes:
        return {"b": value.decode("latin-1")}
    if t is complex:
        return {"c": [_encode(value.real), _encode(value.imag)]}
    if refs is not None and t.__name__ == "_Remote":
        return {"ref": value.name}
    if refs is None:  # program side: send a faithful plain copy of common look-alikes
        for base in (bool, int, float, str, bytes, tuple, list, dict, frozenset, set):
            if isinstance(value, base):
                return _encode(base(value.items()) if base is dict else base(value), None, depth)
        if isinstance(value, range):
            return {"r": [value.start, value.stop, value.step]}
        if hasattr(type(value), "__index__"):  # numpy integers and the like
            return int(value)
        if hasattr(type(value), "__float__"):
            return _encode(float(value), None, depth)
        if hasattr(value, "__next__"):  # generators, map, filter, zip: materialise (capped)
            items = []
            for item in value:
                items.append(_encode(item, None, depth + 1))
                if len(items) > 1_000_000:
                    raise ValueError("iterator too long")
            return {"i": items}
    raise TypeError(f"cannot pass a {t.__name__} between judge and program")


def _decode(obj, refs: dict | None = None):
    """JSON tags -> plain builtin values only (no user-defined types can come out)."""
    if isinstance(obj, list):
        return [_decode(v, refs) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if len(obj) != 1:
        raise ValueError("malformed value")
    (tag, v), = obj.items()
    if tag == "t":
        return tuple(_decode(x, refs) for x in v)
    if tag == "d":
        return {_decode(k, refs): _decode(x, refs) for k, x in v}
    if tag == "s":
        return {_decode(x, refs) for x in v}
    if tag == "z":
        return frozenset(_decode(x, refs) for x in v)
    if tag == "f":
        return float(str(v))
    if tag == "b":
        return str(v).encode("latin-1")
    if tag == "c":
        return complex(float(v[0]) if not isinstance(v[0], dict) else _decode(v[0]),
                       float(v[1]) if not isinstance(v[1], dict) else _decode(v[1]))
    if tag == "r":
        return range(int(v[0]), int(v[1]), int(v[2]))
    if tag == "i":
        return iter([_decode(x, refs) for x in v])
    if tag == "ref" and refs is not None:
        return refs[str(v)]
    raise ValueError(f"unknown tag {tag!r}")


def _serve(namespace: dict, fd_in: int, fd_out: int) -> None:
    """Program side: answer the judge's calls until it closes the pipe."""
    import json

    while True:
        frame = _read_frame(fd_in)
        if frame is None:
            return
        try:
            request = json.loads(frame)
            name = request["call"]
            if name in namespace:
                function = namespace[name]
            elif isinstance(namespace.get("Solution"), type):  # LeetCode-style APPS problems
                function = getattr(namespace["Solution"](), name)
            else:
                raise NameError(f"name {name!r} is not defined")
            args = _decode(request["args"], namespace)
            kwargs = _decode(request["kwargs"], namespace)
            reply = json.dumps({"ok": _encode(function(*args, **kwargs))})
        except BaseException as exc:  # every error becomes the call's answer
            reply = json.dumps({"error": [type(exc).__name__, str(exc)[:500]]})
            if isinstance(exc, SystemExit):
                _write_frame(fd_out, reply.encode())
                raise
        _write_frame(fd_out, reply.encode())


def _judge(spec: dict) -> None:
    """Judge side: run the test statements with remote proxies for the program's names."""
    import builtins
    import json

    fd_out, fd_in = spec["fds"]
    state = {"alive": True, "left": 0.0}  # left: seconds this test may still wait for the program

    class _Remote:
        def __init__(self, name: str) -> None:
            self.name = name

        def __repr__(self) -> str:
            return f"<solution function {self.name}>"

        def __call__(self, *args, **kwargs):
            if not state["alive"]:
                raise RuntimeError("the solution process has ended")
            request = {"call": self.name, "args": _encode(list(args), {}), "kwargs": _encode(kwargs, {})}
            start = time.monotonic()
            try:
                _write_frame(fd_out, json.dumps(request).encode())
                answered, _, _ = select.select([fd_in], [], [], max(0.0, state["left"]))
                frame = _read_frame(fd_in) if answered else b""
            except OSError:
                frame = None
            state["left"] -= time.monotonic() - start
            if frame == b"":
                state["alive"] = False  # still busy with this call: later calls cannot be answered
                raise TimeoutError(f"no answer within the test's {spec['test_timeout']} s")
            if frame is None:
                state["alive"] = False
                raise RuntimeError("the solution process has ended")
            if state["left"] < 0:
                raise TimeoutError(f"answered after the test's {spec['test_timeout']} s")
            reply = json.loads(frame)
            if "ok" in reply:
                return _decode(reply["ok"])
            kind, message = reply["error"]
            cls = getattr(builtins, str(kind), None)
            if not (isinstance(cls, type) and issubclass(cls, Exception)):
                cls = RuntimeError
            raise cls(f"{kind}: {message}" if cls is RuntimeError else message)

    namespace = {"__name__": "__judge__", "__builtins__": builtins}
    passed: list = []
    errors: list = []
    try:
        exec(compile(spec["setup"], "judge_setup.py", "exec"), namespace)
    except BaseException as exc:
        errors.append(f"setup: {type(exc).__name__}: {exc}"[:300])
    for local, remote in spec["remote"].items():  # after setup: they win over its stubs
        namespace[local] = _Remote(remote)
    _write_frame(fd_out, b"{}")  # hello: the program's backstop clock starts now
    try:  # the program answers before its own code runs: its start-up is not timed
        started, _, _ = select.select([fd_in], [], [], spec["startup_timeout"])
        state["alive"] = bool(started) and _read_frame(fd_in) == b"{}"
    except (OSError, ValueError):
        state["alive"] = False
    for source, is_test in spec["statements"]:
        state["left"] = spec["test_timeout"]
        try:
            exec(compile(source, "test.py", "exec"), namespace)
            ok = True
        except BaseException as exc:  # a failing test, whatever it raised
            ok = False
            errors.append(f"{type(exc).__name__}: {exc}"[:300])
        if is_test:
            passed.append(ok)
    os.close(fd_out)
    sys.stdout.flush()
    print("\n" + _VERDICT + json.dumps({"passed": passed, "errors": errors[:20]}))


_VERDICT = "PWLOCK-JUDGE-VERDICT "


if __name__ == "__main__":
    _boot(sys.argv[1])


# ---- evaluator side ----------------------------------------------------------------------
import selectors  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import warnings  # noqa: E402
from dataclasses import dataclass  # noqa: E402

STATUSES = ("ok", "failed", "timeout", "output_limit", "error")
PROGRAM_MARGIN_S = 1.0
"""Added to a function-test program's backstop deadline (the judge enforces the per-test limit)."""
PROGRAM_GRACE_S = 0.5
"""How long a function-test program may keep running after the judge is done."""


@dataclass(frozen=True)
class SandboxResult:
    """What one sandboxed run did."""

    status: str
    """"ok" (exit 0), "failed" (non-zero exit or signal), "timeout" (wall or CPU limit),
    "output_limit" (stdout/stderr over the cap; the run was killed), "error" (the sandbox
    itself could not run the program)."""
    returncode: int | None
    """Exit code, negative signal number when killed by a signal, None when we killed it."""
    stdout: str
    stderr: str
    duration: float
    """Seconds of wall time from the start of user code to its end."""
    isolation: str
    """"namespaces" or "process" (see the module docstring)."""
    truncated: bool = False
    """Whether stdout or stderr was cut at the output cap."""
    error: str = ""
    """Why the sandbox failed (status "error"), or other detail."""
    wrote_files: bool = False
    """Whether the program left anything in its work dir (a file or folder), or removed it or
    made it unreadable (see the module docstring)."""

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True)
class FunctionTestResult:
    """Outcome of `run_function_tests`: one bool per test, plus both runs for diagnosis."""

    passed: tuple[bool, ...]
    errors: tuple[str, ...]
    program: SandboxResult
    judge: SandboxResult

    @property
    def fraction(self) -> float:
        return sum(self.passed) / len(self.passed) if self.passed else 0.0

    @property
    def all_passed(self) -> bool:
        return bool(self.passed) and all(self.passed)


_probe_lock = threading.Lock()
_probed: list[str] = []


def available_isolation() -> str:
    """"namespaces" if a namespace sandbox really runs here, else "process" (cached)."""
    with _probe_lock:
        if not _probed:
            level = "process"
            if sys.platform.startswith("linux"):
                probe = _run(_job("print(6 * 7)", isolation="namespaces", timeout=5.0, guard=True), "", 1 << 16)
                if probe.status == "ok" and probe.stdout.strip() == "42":
                    level = "namespaces"
                else:
                    warnings.warn(f"pwlock.sandbox: namespace isolation unavailable ({probe.error or probe.stderr[-200:]}); "
                                  "falling back to process isolation", RuntimeWarning, stacklevel=2)
            _probed.append(level)
        return _probed[0]


def run_python(
    code: str,
    *,
    stdin: str = "",
    timeout: float = 0.5,
    memory_mb: int = 1024,
    max_processes: int = 16,
    file_size_mb: int = 16,
    output_limit: int = 4 << 20,
    isolation: str = "auto",
    guard: bool = True,
    startup_timeout: float = 10.0,
) -> SandboxResult:
    """Run `code` as a Python 3 script in the sandbox and return what happened.

    `timeout` is wall-clock seconds for the user code; `memory_mb` caps the address space;
    `max_processes` caps processes/threads (guard off); `file_size_mb` caps each file
    written in the work dir; `output_limit` caps stdout and stderr (bytes, each);
    `isolation` is "auto", "namespaces" or "process"; `guard` installs the seccomp
    filter and the audit hook.
    """
    job = _job(code, isolation=isolation, timeout=timeout, memory_mb=memory_mb,
               max_processes=max_processes, file_size_mb=file_size_mb, guard=guard,
               startup_timeout=startup_timeout)
    return _run(job, stdin, output_limit)


def run_function_tests(
    program: str,
    statements: list[tuple[str, bool]],
    *,
    setup: str = "",
    remote: dict[str, str],
    program_setup: str = "",
    timeout: float = 0.5,
    memory_mb: int = 1024,
    output_limit: int = 1 << 20,
    isolation: str = "auto",
    guard: bool = True,
) -> FunctionTestResult:
    """Run function-call tests against `program` (see the module docstring).

    The judge executes trusted `setup` code, then each of `statements` (source, is_test) in
    order in one namespace where every name in `remote` (local name -> program name; these
    replace what `setup` defined under the same names) is a proxy that calls the program's function of that name (or `Solution().name`). A test
    passes when its statement runs without raising. `program_setup` runs in the program
    after its own code (e.g. MBPP's test_setup_code); the judge can pass the names it
    defines as arguments when they are listed in `remote`. `timeout` is per statement: the
    seconds each may wait for the program's answers (module-level code included in the first);
    a statement that runs out fails, and so do the later ones (the program is still busy). The
    program's own deadline, a backstop, is `timeout` times the number of statements plus
    `PROGRAM_MARGIN_S`; once the judge is done, a program still running is stopped.
    """
    if timeout <= 0:
        raise ValueError("timeout must be positive")
    to_program_r, to_program_w = os.pipe()
    to_judge_r, to_judge_w = os.pipe()
    spec = {"fds": [to_program_w, to_judge_r], "setup": setup, "remote": dict(remote),
            "statements": [[s, bool(t)] for s, t in statements], "test_timeout": float(timeout),
            "startup_timeout": 10.0}
    program_timeout = timeout * max(1, len(statements)) + PROGRAM_MARGIN_S
    judge_job = _job("", isolation=isolation, timeout=program_timeout + spec["startup_timeout"] + 5.0,
                     memory_mb=max(memory_mb, 1024),
                     max_processes=4, file_size_mb=1, guard=guard, keep_fds=[to_program_w, to_judge_r])
    judge_job["judge"] = spec
    program_job = _job(program, isolation=isolation, timeout=program_timeout, memory_mb=memory_mb,
                       max_processes=16, file_size_mb=16, guard=guard, keep_fds=[to_program_r, to_judge_w])
    program_job["serve"] = [to_program_r, to_judge_w]
    program_job["serve_setup"] = program_setup
    program_job["module_name"] = "__solution__"  # `if __name__ == "__main__":` demos stay off
    n_tests = sum(1 for _, t in statements if t)
    runs: dict[str, SandboxResult] = {}
    judge_box = _Sandbox(judge_job, "", output_limit)
    program_box = _Sandbox(program_job, "", output_limit)
    try:
        judge_box.start()
        program_box.start()
    finally:
        for fd in (to_program_r, to_program_w, to_judge_r, to_judge_w):
            os.close(fd)
    thread = threading.Thread(target=lambda: runs.__setitem__("program", program_box.wait()), daemon=True)
    thread.start()
    runs["judge"] = judge_box.wait()
    thread.join(PROGRAM_GRACE_S)  # the judge closed its pipe: a program that serves calls exits now
    if thread.is_alive():
        program_box.stop()  # still busy (a test timed out) or hung: the tests are over
        thread.join()
    judge = runs["judge"]
    passed: tuple[bool, ...] = (False,) * n_tests
    errors: tuple[str, ...] = ()
    line = next((ln for ln in reversed(judge.stdout.splitlines()) if ln.startswith(_VERDICT)), None)
    if line is not None and judge.status == "ok":
        import json

        verdict = json.loads(line[len(_VERDICT):])
        if len(verdict["passed"]) == n_tests:
            passed = tuple(bool(x) for x in verdict["passed"])
        errors = tuple(str(e) for e in verdict["errors"])
    else:
        errors = (f"judge {judge.status}: {judge.error or judge.stderr[-300:]}",)
    return FunctionTestResult(passed, errors, runs["program"], judge)


# ---- evaluator internals -------------------------------------------------------------------

def _job(code: str, *, isolation: str, timeout: float, memory_mb: int = 1024, max_processes: int = 16,
         file_size_mb: int = 16, guard: bool = True, startup_timeout: float = 10.0,
         keep_fds: list[int] | None = None) -> dict:
    if isolation == "auto":
        isolation = available_isolation()
    if isolation not in ("namespaces", "process"):
        raise ValueError(f"isolation must be 'auto', 'namespaces' or 'process', got {isolation!r}")
    if timeout <= 0:
        raise ValueError("timeout must be positive")
    return {
        "code": code, "isolation": isolation, "timeout": float(timeout), "memory_mb": int(memory_mb),
        "max_processes": int(max_processes), "file_size_mb": int(file_size_mb), "audit": bool(guard), "seccomp": bool(guard),
        "startup_timeout": float(startup_timeout), "keep_fds": list(keep_fds or []), "serve": None,
        "serve_setup": "", "judge": None, "module_name": "__main__", "work_mb": max(64, 2 * int(file_size_mb)),
        "plan": _root_plan() if isolation == "namespaces" else [],
    }


_plan_cache: list = []


def _root_plan() -> list:
    """What the new root holds: [kind, path, symlink target] with kind dir/file/symlink."""
    if _plan_cache:
        return _plan_cache[0]
    plan: list = []
    covered: list[str] = []
    for top in ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            plan.append(["symlink", top, os.readlink(top)])
        elif os.path.isdir(top):
            plan.append(["dir", top, ""])
            covered.append(top)
    for prefix in sorted({os.path.realpath(p) for p in (sys.base_prefix, sys.base_exec_prefix)}):
        if not any(prefix == c or prefix.startswith(c + "/") for c in covered):
            plan.append(["dir", prefix, ""])
            covered.append(prefix)
    for dev in ("/dev/null", "/dev/zero", "/dev/random", "/dev/urandom"):
        if os.path.exists(dev):
            plan.append(["file", dev, ""])
    _plan_cache.append(plan)
    return plan


class _Sandbox:
    """One supervisor process: start it, then collect its output and report."""

    def __init__(self, job: dict, stdin: str, output_limit: int) -> None:
        self.job, self.stdin, self.output_limit = job, stdin, output_limit

    def start(self) -> None:
        job = self.job
        self.tmp = tempfile.mkdtemp(prefix="pwlock-sandbox-")
        as_root = os.geteuid() == 0
        if job["isolation"] == "namespaces":
            job["root"] = os.path.join(self.tmp, "root")
            os.mkdir(job["root"])
            home = "/work"
        else:
            job["work"] = home = os.path.join(self.tmp, "work")
            os.mkdir(home)
            if as_root:
                os.chown(home, _NOBODY, _NOBODY)
        if as_root:
            os.chmod(self.tmp, 0o711)  # the sandbox user must traverse it to its mount point / work dir
        self.report_r, report_w = os.pipe()
        job["report_fd"] = report_w
        job_path = os.path.join(self.tmp, "job")
        with open(job_path, "wb") as f:
            marshal.dump(job, f)
        stdin_path = os.path.join(self.tmp, "stdin")
        with open(stdin_path, "w", encoding="utf-8") as f:
            f.write(self.stdin)
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
               "HOME": home, "TMPDIR": home}
        try:
            with open(stdin_path, "rb") as stdin:
                self.proc = subprocess.Popen(
                    [sys.executable, "-I", "-S", "-B", os.path.abspath(__file__), job_path],
                    stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=self.tmp,
                    pass_fds=[report_w, *job["keep_fds"]], start_new_session=True,
                )
        except BaseException:
            os.close(self.report_r)
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise
        finally:
            os.close(report_w)
        self.started = time.monotonic()
        self.cancelled = False

    def stop(self) -> None:
        """Ask the supervisor to kill the program now (from another thread than `wait`'s); the
        run then reports "timeout"."""
        self.cancelled = True
        try:
            self.proc.send_signal(_SIGTERM)
        except OSError:
            pass

    def wait(self) -> SandboxResult:
        job, proc = self.job, self.proc
        out_fd, err_fd = proc.stdout.fileno(), proc.stderr.fileno()
        outer_deadline = self.started + job["startup_timeout"] + job["timeout"] + 3.0
        buffers = {out_fd: bytearray(), err_fd: bytearray(), self.report_r: bytearray()}
        selector = selectors.DefaultSelector()
        for fd in buffers:
            selector.register(fd, selectors.EVENT_READ)
        truncated = stopped = killed = False
        exited_at = None
        try:
            while selector.get_map():
                now = time.monotonic()
                if proc.poll() is not None:
                    exited_at = exited_at or now
                    if now - exited_at > 1.0:  # something still holds the pipes: stop reading
                        break
                if now > outer_deadline and not killed:
                    _kill_group(proc)
                    killed = True
                    outer_deadline = now + 2.0
                for key, _ in selector.select(timeout=0.05):
                    data = os.read(key.fd, 1 << 16)
                    if not data:
                        selector.unregister(key.fd)
                        continue
                    buf = buffers[key.fd]
                    room = self.output_limit - len(buf)
                    if len(data) > room:
                        truncated = True
                        data = data[:max(room, 0)]
                        if not stopped:
                            stopped = True
                            proc.send_signal(_SIGTERM)  # the supervisor kills the program
                    buf += data
            try:
                proc.wait(timeout=max(0.1, outer_deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _kill_group(proc)
                killed = True
                proc.wait()
        finally:
            if proc.poll() is None:  # only after an unexpected error above
                _kill_group(proc)
                proc.wait()
            selector.close()
            proc.stdout.close()
            proc.stderr.close()
            os.close(self.report_r)
            shutil.rmtree(self.tmp, ignore_errors=True)
        stdout, stderr = bytes(buffers[out_fd]), bytes(buffers[err_fd])
        report = bytes(buffers[self.report_r]).decode("utf-8", "replace").split("\n", 4)
        wrote = False
        if len(report) == 5 and report[0] in ("ok", "failed", "timeout", "killed", "error"):
            status, code, duration, error = report[0], (int(report[1]) if report[1] else None), float(report[2]), report[4]
            wrote = report[3] == "1"
        else:
            status, code, duration = "error", None, 0.0
            error = "the supervisor was killed" if killed else f"the supervisor died ({proc.returncode})"
        if truncated:
            status = "output_limit"
        elif status == "killed" and self.cancelled:
            status, error = "timeout", "stopped by the evaluator: still running after its tests"
        elif status == "killed":
            status, error = "error", error or "killed"
        return SandboxResult(status, code, stdout.decode("utf-8", "replace"), stderr.decode("utf-8", "replace"),
                             duration, job["isolation"], truncated, error, wrote)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, _SIGKILL)
    except OSError:
        pass


def _run(job: dict, stdin: str, output_limit: int) -> SandboxResult:
    box = _Sandbox(job, stdin, output_limit)
    box.start()
    return box.wait()
