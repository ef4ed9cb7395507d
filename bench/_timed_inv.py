"""PROFILE HELPER (bench/profile_provision.py runs it): `inv` with wall-clock timers, nothing else changed.

    python bench/_timed_inv.py provision h0 --recipe PATH      # argv as for `inv`

Runs invoke's `program.run()` exactly as the venv's `inv` script does, after installing an
import hook that wraps a few functions *when their module is first imported* (so nothing is
imported earlier than the real command would import it). Writes to $PROFILE_OUT (JSON): the
time.time() this file started, finished main and finished the atexit handlers (run here, timed),
the threads still alive after main, each wrapped function's calls and wall time,
and the botocore API operations made.
"""

import time

T0 = time.time()

import atexit  # noqa: E402
import importlib.abc  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402

#: module → attributes to time ("Class.method" or "function").
PATCHES = {
    "ec2kit.recipe.loader": ["load_recipe"],
    "ec2kit.recipe.executor": ["run_recipe"],
    "ec2kit.sandbox": ["ensure_running", "Resolver.address", "SandboxInfo.client"],
    "ec2kit.context": ["Context.instances_named", "Context.target", "Context.admit_caller", "Context.connect", "Context.close"],
    "ec2kit.aws.cloud": ["Cloud.__init__"],
    "ec2kit.ssh.transport": ["Transport.run", "Transport.execute"],
    "ec2kit.ssh": ["connect"],
    "boto3.session": ["Session.client", "Session.__init__"],
    "botocore.client": ["BaseClient._make_api_call"],
}
STATS: dict[str, list[float]] = {}
API: list[tuple[str, float]] = []
LOCK = threading.Lock()


def timed(label, fn):
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            took = time.perf_counter() - start
            with LOCK:
                STATS.setdefault(label, []).append(took)
                if label.endswith("_make_api_call") and len(args) > 1:
                    API.append((str(args[1]), took))

    wrapper.__wrapped__ = fn
    return wrapper


def apply(name, module):
    for attr in PATCHES[name]:
        owner_name, _, method = attr.rpartition(".")
        owner = getattr(module, owner_name) if owner_name else module
        setattr(owner, method, timed(f"{name}.{attr}", getattr(owner, method)))


class Hook(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        if fullname not in PATCHES:
            return None
        sys.meta_path.remove(self)
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_and_patch(module):
            exec_module(module)
            apply(fullname, module)

        spec.loader.exec_module = exec_and_patch
        return spec


sys.meta_path.insert(0, Hook())
from invoke.main import program  # noqa: E402

code = 0
try:
    program.run()
except SystemExit as e:
    code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
T1 = time.time()
# What the interpreter will still do after main: wait for non-daemon threads, then atexit
# handlers, then tear down modules. The atexit handlers run here, timed (they would run next
# anyway; Python clears them once run), so the outside timer's remainder is threads + teardown.
threads = [f"{t.name}{' (daemon)' if t.daemon else ''}" for t in threading.enumerate() if t is not threading.main_thread()]
handlers = atexit._ncallbacks()
atexit._run_exitfuncs()
T2 = time.time()
with open(os.environ["PROFILE_OUT"], "w") as f:
    json.dump(
        {
            "t0": T0,
            "t1": T1,
            "t2": T2,
            "threads": threads,
            "atexit_handlers": handlers,
            "stats": STATS,
            "api": API,
            "modules": len(sys.modules),
        },
        f,
    )
sys.exit(code)
