"""What the Python tests share. check() prints a check's outcome and records a failure in
`failures` (the test goes on and fails at the end); require() stops the test at its first
failed check; run() runs a command and stops the test when it exits other than `expect`."""
import subprocess
import sys

failures = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what, flush=True)
    if not ok:
        failures.append(what)


def require(ok, what, result=None):
    if not ok:
        detail = f"\nstdout: {result.stdout}\nstderr: {result.stderr}" if result else ""
        sys.exit(f"FAIL: {what}{detail}")
    print(f"ok: {what}")


def run(*args, expect=0):
    """Runs the command (arguments str()-ed), its output captured; expect=None takes any
    exit status."""
    p = subprocess.run([str(a) for a in args], capture_output=True, text=True)
    if expect is not None and p.returncode != expect:
        raise SystemExit(f"command exited {p.returncode}, expected {expect}: "
                         f"{' '.join(map(str, args))}\n{p.stdout}\n{p.stderr}")
    return p
