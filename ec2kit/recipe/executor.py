"""Run recipe steps against hosts: batches of shell steps in one SSH exec, tasks locally.

Per host, consecutive shell steps go into one generated bash script (one exec
channel); a Python task, or a step whose values need a result ``register``-ed
earlier in the same batch, closes the batch. ``when`` is evaluated locally
just before the step joins a batch. Hosts run in parallel threads, one
connection each; one host's failure does not stop the others.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import Ec2kitError, RecipeError, RemoteError, StepFailed
from .loader import load_recipe, resolve_vars, where
from .model import COMMON_KEYS, HostReport, Recipe, RunReport, Step, StepResult, step_name
from .registry import TaskContext, call_task, get_task
from .render import Masker, eval_when, referenced_names, render_template_file, render_value
from .report import CollectingReporter, Reporter, TextReporter
from .script import COMMAND as SCRIPT_COMMAND
from .script import Marker, build_script, new_nonce, parse_output
from .steps import PlanContext, PlannedStep, plan_step

if TYPE_CHECKING:
    from ..context import Context
    from ..ssh import Transport


class _HostVars(dict):
    """The ``host`` variable: name, id, user; ``home`` is fetched (one round trip) only if used."""

    def __init__(self, data: dict[str, Any], get_host: Any) -> None:
        super().__init__(data)
        self._get_host = get_host

    def __missing__(self, key: str) -> Any:
        if key == "home":
            self["home"] = self._get_host().home
            return self["home"]
        raise KeyError(key)


def select_steps(
    steps: list[Step],
    *,
    tags: tuple[str, ...] | list[str] = (),
    skip_tags: tuple[str, ...] | list[str] = (),
    start_at: str | int | None = None,
) -> list[Step]:
    """Steps that carry one of ``tags`` (all when empty), minus ``skip_tags``, from ``start_at`` on."""
    chosen = list(steps)
    if start_at is not None:
        key = str(start_at)
        idx = next((i for i, s in enumerate(chosen) if s.name == key or str(s.number) == key), None)
        if idx is None:
            import difflib

            close = difflib.get_close_matches(key, [s.name for s in chosen], n=3, cutoff=0.5)
            guess = (" Did you mean " + " or ".join(f"'{c}'" for c in close) + "?") if close else ""
            raise RecipeError(f"--start-at '{key}': no step has that name or number.{guess}")
        chosen = chosen[idx:]
    if tags:
        chosen = [s for s in chosen if set(s.tags) & set(tags)]
    if skip_tags:
        chosen = [s for s in chosen if not set(s.tags) & set(skip_tags)]
    return chosen


@dataclass
class _Entry:
    """A step waiting in the current batch: planned (runs remotely) or already decided locally."""

    step: Step
    planned: PlannedStep | None = None
    result: StepResult | None = None
    register: str | None = None


@dataclass
class HostRun:
    """Runs a recipe's steps for one target; collects a HostReport."""

    steps: list[Step]
    vars: dict[str, Any]
    recipe: Recipe | None = None
    check: bool = False
    reporter: Any = None
    masker: Masker = field(default_factory=Masker)
    ctx: Context | None = None
    host: Transport | None = None
    target: str | None = None
    instance: Any = None  # the target's Instance, when the caller already looked it up
    report: HostReport = field(init=False)

    def __post_init__(self) -> None:
        self.label = self.target or (self.host.name if self.host else "local")
        self.report = HostReport(self.label, check=self.check)
        self.reporter = self.reporter or CollectingReporter()
        self.pending: list[_Entry] = []
        self.in_batch: set[str] = set()
        self.recipe_name = self.recipe.name if self.recipe else (self.steps[0].recipe if self.steps else "")
        if self.target:
            self.vars["name"] = self.target
        elif self.host is not None:
            self.vars.setdefault("name", self.host.name)
        if "host" not in self.vars:
            self.vars["host"] = self._host_vars()

    # -- host

    def _host_vars(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.vars.get("name")}
        if self.host is not None:
            data.update(name=self.host.name, id=self.host.target.alias, user=self.host.target.user)
        return _HostVars(data, self._get_host)

    def _get_host(self) -> Transport:
        if self.host is None:
            if not self.target:
                raise RecipeError(
                    "A shell step needs a host, but this recipe runs on none.",
                    hint='Pass a host name, or launch one first (a step with task = "launch").',
                )
            if self.ctx is None:
                raise RecipeError(f"Cannot reach '{self.target}': no Context to resolve the instance.")
            self.host = self.ctx.connect(self.instance if self.instance is not None else self.target)
        return self.host

    # -- running

    def run(self) -> HostReport:
        t0 = time.monotonic()
        current: Step | None = None
        try:
            for step in self.steps:
                current = step
                self._add(step)
            current = None
            self._flush()
        except StepFailed as err:
            self._fail(err)
        except Ec2kitError as err:
            try:
                self._flush()  # the steps before the bad one still run, as they would have
            except Ec2kitError as earlier:
                self._fail(earlier)
            else:
                self._fail(self._wrap(err, current))
        except Exception as err:  # a bug (ours or a task's): report it on this host, keep others going
            self._fail(
                StepFailed(
                    f"Recipe {self.recipe_name}, {current.label() if current else 'a step'} on "
                    f"{self.label}: internal error {type(err).__name__}: {self.masker(str(err))}"
                )
            )
        self.report.duration = time.monotonic() - t0
        self.reporter.recap(self.report)
        return self.report

    def _wrap(self, err: Ec2kitError, step: Step | None) -> Ec2kitError:
        if isinstance(err, RecipeError) or step is None:
            return err
        return StepFailed(f"Recipe {self.recipe_name}, {step.label()} on {self.label}: {self.masker(str(err))}")

    def _fail(self, err: Exception) -> None:
        self.report.failure = self.masker(str(err))
        self.report.error = err

    def _add(self, step: Step) -> None:
        if step.kind == "task":
            self._flush()
            self._run_task(step)
            return
        if referenced_names(step) & self.in_batch:
            self._flush()
        args = step.args
        if "when" in args and not eval_when(args["when"], self.vars, step):
            when = args["when"]
            result = self._result(step, "skipped", f"when: {when} is false")
            self.pending.append(_Entry(step, result=result))
            if args.get("register"):
                self.vars[args["register"]] = {
                    "stdout": "",
                    "stderr": "",
                    "exit_code": None,
                    "changed": False,
                    "skipped": True,
                    "status": "skipped",
                }
            return
        self.pending.append(_Entry(step, planned=self._plan(step), register=args.get("register")))
        if args.get("register"):
            self.in_batch.add(args["register"])

    def _render_args(self, step: Step) -> dict[str, Any]:
        dirs = tuple(self.recipe.template_dirs) if self.recipe else ()
        return {k: (v if k == "when" else render_value(v, self.vars, step, k, dirs)) for k, v in step.args.items()}

    def _plan(self, step: Step) -> PlannedStep:
        args = self._render_args(step)
        dirs = tuple(self.recipe.template_dirs) if self.recipe else ()
        ctx = PlanContext(
            kind=step.kind,
            location=lambda: f"{where(step)[0]}: {step.label()}",
            render_template=lambda name: render_template_file(name, self.vars, step, dirs),
            base_dir=self.recipe.base_dir if self.recipe else None,
        )
        return plan_step(step.number, step_name(step.kind, args), step.kind, args, ctx)

    def _result(self, step: Step, status: str, reason: str = "", **kw: Any) -> StepResult:
        return StepResult(step.number, step.name, step.kind, status, self.masker(reason), check=self.check, **kw)

    def _emit(self, result: StepResult) -> None:
        self.report.steps.append(result)
        self.reporter.step(self.label, result)

    def _flush(self) -> None:
        """Run the pending batch (one exec) and report its steps in order."""
        entries, self.pending, self.in_batch = self.pending, [], set()
        planned = [e.planned for e in entries if e.planned]
        if not planned:
            for e in entries:
                self._emit(e.result)  # type: ignore[arg-type]
            return
        by_number = {e.step.number: e for e in entries}
        order = [e.step.number for e in entries]
        done: set[int] = set()
        failure: list[StepFailed] = []

        def finish(marker: Marker) -> None:
            # emit local decisions that precede this step, then the step itself
            for n in order:
                if n in done:
                    continue
                if n == marker.number:
                    break
                if by_number[n].result is not None:
                    done.add(n)
                    self._emit(by_number[n].result)  # type: ignore[arg-type]
            done.add(marker.number)
            entry = by_number[marker.number]
            result = self._from_marker(entry, marker)
            self._emit(result)
            if entry.register:
                self.vars[entry.register] = {
                    "stdout": marker.stdout.rstrip("\n"),
                    "stderr": marker.stderr.rstrip("\n"),
                    "exit_code": marker.exit_code,
                    "changed": marker.status == "changed",
                    "skipped": marker.status == "skipped",
                    "status": marker.status,
                }
            if marker.status == "failed":
                failure.append(self._step_failed(entry.step, result))

        nonce = new_nonce()
        script = build_script(planned, check=self.check, nonce=nonce)
        prefix = f"@@ec2kit:{nonce}:"

        def on_line(line: str) -> None:
            if line.startswith(prefix):
                markers, _ = parse_output(line, nonce)
                for m in markers:
                    if m.number not in done:
                        finish(m)

        first = entries[0].step
        try:
            host = self._get_host()
            res = host.run(SCRIPT_COMMAND, stdin=script, check=False, stream=on_line)
        except RemoteError as err:
            self._emit(self._result(first, "failed", "unreachable: " + self.masker(str(err.message))))
            raise StepFailed(
                f"Recipe {self.recipe_name}, {first.label()} could not run on {self.label}: {self.masker(str(err))}"
            ) from None
        markers, other = parse_output(res.stdout, nonce)
        for m in markers:  # anything the stream did not deliver
            if m.number not in done:
                finish(m)
        if failure:
            raise failure[0]
        missing = [n for n in order if n not in done and by_number[n].planned is not None]
        if missing:
            step = by_number[missing[0]].step
            tail = "\n".join((other + "\n" + res.stderr).strip().splitlines()[-20:])
            result = self._result(step, "failed", "the batch script stopped early", exit_code=res.exit_code)
            self._emit(result)
            raise StepFailed(
                self.masker(
                    f"Recipe {self.recipe_name}, {step.label()} on {self.label}: the batch script stopped before this step "
                    f"(exit code {res.exit_code}).\n--- last lines of output ---\n{tail}"
                )
            )
        for n in order:
            if n not in done:
                self._emit(by_number[n].result)  # type: ignore[arg-type]

    def _from_marker(self, entry: _Entry, m: Marker) -> StepResult:
        p = entry.planned
        assert p is not None
        reason = m.reason
        if m.status == "changed" and not reason and p.kind in ("run", "script"):
            reason = "ran" if not self.check else "would run"
        return StepResult(
            m.number,
            p.name,
            p.kind,
            m.status,
            self.masker(reason),
            m.ms / 1000,
            m.exit_code,
            self.masker(m.stdout),
            self.masker(m.stderr),
            self.masker(m.diff),
            self.masker(p.command),
            self.check,
        )

    def _step_failed(self, step: Step, result: StepResult) -> StepFailed:
        tail = "\n".join(result.output.splitlines()[-20:])
        msg = (
            f"Recipe {self.recipe_name}, step {step.number} '{result.name}' failed on {self.label} "
            f"with exit code {result.exit_code}.\n"
            f"Command: {result.command}"
        )
        if tail:
            msg += f"\n--- last lines of output ---\n{tail}"
        return StepFailed(msg)

    def _run_task(self, step: Step) -> None:
        t0 = time.monotonic()
        args = step.args
        if "when" in args and not eval_when(args["when"], self.vars, step):
            self._emit(self._result(step, "skipped", f"when: {args['when']} is false"))
            return
        rendered = self._render_args(step)
        task_args = {k: v for k, v in rendered.items() if k not in COMMON_KEYS and k != "task"}
        fn = get_task(str(rendered["task"]), at=f"{where(step)[0]}: {step.label()}")
        tc = TaskContext(
            self.ctx,
            self.vars,
            check=self.check,
            target=self.target,
            on_message=None if self.check else (lambda msg: self.reporter.message(self.label, self.masker(msg))),
        )
        at = f"{where(step)[0]}: {step.label()} (task {rendered['task']})"
        try:
            out = call_task(fn, tc, task_args, at=at)
        except RecipeError:
            raise
        except Ec2kitError as err:
            self._emit(self._result(step, "failed", str(err).splitlines()[0], duration=time.monotonic() - t0))
            raise StepFailed(
                f"Recipe {self.recipe_name}, {step.label()} (task {rendered['task']}) failed on "
                f"{self.label}: {self.masker(str(err))}"
            ) from None
        if out:
            self.vars.update(out)
        if args.get("register"):
            self.vars[args["register"]] = {
                "changed": tc.changed,
                "result": out or {},
                "status": "changed" if tc.changed else "ok",
            }
        if tc.target != self.target:
            self.target, self.host, self.instance = tc.target, None, None
            self.vars["name"] = tc.target
            self.vars["host"] = self._host_vars()
        status = "changed" if tc.changed else "ok"
        reason = tc.reason or ("; ".join(tc.messages[-1:]) if self.check else _describe_outputs(out))
        self._emit(
            self._result(step, status, reason, duration=time.monotonic() - t0, command=self.masker("; ".join(tc.messages)))
        )


def _describe_outputs(out: dict[str, Any] | None) -> str:
    """``volume vol-0abc, snapshot snap-0def`` from what a task returned (ids where there are)."""
    parts = []
    for key, value in (out or {}).items():
        ident = getattr(value, "id", None) or (value.get("id") if isinstance(value, dict) else None)
        parts.append(f"{key} {ident}" if ident else key)
    return ", ".join(parts)


def run_steps_on_host(
    host: Transport,
    steps: list[Step],
    vars: dict[str, Any] | None = None,
    check: bool = False,
    *,
    recipe: Recipe | None = None,
    reporter: Reporter | None = None,
    secrets: set[str] | None = None,
    ctx: Context | None = None,
) -> HostReport:
    """Run steps on one connected Host (no AWS needed); returns its HostReport (never raises for step failures)."""
    run = HostRun(
        steps, dict(vars or {}), recipe=recipe, check=check, reporter=reporter, masker=Masker(secrets), ctx=ctx, host=host
    )
    return run.run()


def run_recipe(
    ctx: Context | None,
    recipe: Recipe | str,
    *,
    hosts: list[str] | None = None,
    vars: dict[str, Any] | None = None,
    check: bool = False,
    tags: tuple[str, ...] | list[str] = (),
    skip_tags: tuple[str, ...] | list[str] = (),
    start_at: str | int | None = None,
    reporter: Reporter | None = None,
    max_parallel: int = 16,
) -> RunReport:
    """Run a recipe on each host in parallel (one connection each); returns a RunReport (``.ok``, per-host recap).

    ``vars`` override the recipe's (``secret:KEY`` entries are secrets); ``check`` changes nothing and
    shows what would change. Without hosts the recipe runs once, targeting ``vars["name"]`` if given.
    """
    if isinstance(recipe, str):
        recipe = load_recipe(recipe)
    values, secrets = resolve_vars(recipe, vars)
    steps = select_steps(recipe.steps, tags=tuple(tags), skip_tags=tuple(skip_tags), start_at=start_at)
    reporter = reporter or TextReporter()
    targets: list[str | None] = list(hosts) if hosts else [values.get("name")]
    masker = Masker(secrets)
    t0 = time.monotonic()
    # One DescribeInstances for every host, here, rather than one per host thread at once.
    lookup = getattr(ctx, "instances_named", None)
    known = lookup([t for t in targets if t]) if lookup is not None and len(targets) > 1 else {}

    def one(target: str | None) -> HostReport:
        run = HostRun(
            steps,
            dict(values),
            recipe=recipe,
            check=check,
            reporter=reporter,
            masker=masker,
            ctx=ctx,
            target=target,
            instance=known.get(target or ""),
        )
        return run.run()

    report = RunReport(check=check)
    if len(targets) == 1:
        results = [one(targets[0])]
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(max_parallel, len(targets))) as pool:
            results = list(pool.map(one, targets))
    for r in results:
        report.hosts[r.name] = r
    report.duration = time.monotonic() - t0
    reporter.done(report)
    return report
