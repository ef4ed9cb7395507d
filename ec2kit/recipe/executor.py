"""Run recipe steps against hosts: batches of shell steps in one SSH exec, tasks locally.

Per host, consecutive shell steps go into one generated bash script (one exec
channel); a Python task, or a step whose values need a result ``register``-ed
earlier in the same batch, closes the batch. ``when`` is evaluated locally
just before the step joins a batch. Hosts run in parallel threads, one
connection each; one host's failure does not stop the others.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ..errors import Ec2kitError, RecipeError, StepFailed
from .batch import Batch, BatchRun, Entry, NotConfirmed, confirm_only
from .kinds import COMMON_KEYS, PlanContext, check_values
from .loader import load_recipe, resolve_vars, step_where, where
from .model import HostReport, Recipe, RunReport, Step, StepResult, step_name
from .plan import PlannedStep, plan_step
from .registry import TaskContext, call_task, get_task
from .render import Masker, eval_when, render_template_file, render_value
from .report import CollectingReporter, Reporter, TextReporter
from .script import Identity
from .selection import select_steps
from .variables import HostFacts, instance_facts, inventory, resolve_templated, split_host_overrides, values_for

if TYPE_CHECKING:
    from ..context import Context
    from ..ssh import Transport


class HostRun:
    """Runs a recipe's steps for one target (a connected ``host``, or an instance name resolved via ``ctx``)."""

    def __init__(
        self,
        steps: list[Step],
        vars: dict[str, Any],
        recipe: Recipe | None = None,
        check: bool = False,
        reporter: Reporter | None = None,
        masker: Masker | None = None,
        ctx: Context | None = None,
        host: Transport | None = None,
        target: str | None = None,
        instance: Any = None,  # the target's Instance, when the caller already looked it up
        confirm: Identity | None = None,  # the host came from the host cache: make sure it is this one first
    ) -> None:
        self.steps = steps
        self.vars = vars  # the run's variables; tasks and ``register`` add to them
        self.recipe = recipe
        self.check = check
        self.reporter: Reporter = reporter or CollectingReporter()
        self.wants_diff = check or bool(getattr(self.reporter, "wants_diff", True))
        self.masker = masker or Masker()
        self.ctx = ctx
        self.host = host
        self.target = target
        self.instance = instance
        self.confirm = confirm
        self.label = target or (host.name if host else "local")
        self.report = HostReport(self.label, check=check)
        self.batch = Batch()
        self.recipe_name = recipe.name if recipe else (steps[0].recipe if steps else "")
        self.template_dirs = tuple(recipe.template_dirs) if recipe else ()
        if target:
            self.vars["name"] = target
        elif host is not None:
            self.vars.setdefault("name", host.name)
        if "host" not in self.vars:
            self.vars["host"] = self._host_vars()

    # -- host

    def _host_vars(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.vars.get("name")}
        if self.instance is not None:
            data.update(instance_facts(self.instance))
        if self.host is not None:
            data.update(name=self.host.name, id=self.host.target.alias, user=self.host.target.user)
        return HostFacts(data, self._get_host)

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
        """Every step in order, batch by batch; the report (failures are recorded, not raised)."""
        t0 = time.monotonic()
        current: Step | None = None
        try:
            where = f"{self.recipe.path}" if self.recipe and self.recipe.path else f"recipe {self.recipe_name}"
            resolve_templated(self.vars, set(self.vars) - {"host", "hosts", "tags"}, f"{where} [vars], host {self.label}")
            for step in self.steps:
                current = step
                self._add(step)
            current = None
            self._flush()
        except StepFailed as err:
            self._fail(err)
        except NotConfirmed:
            raise  # nothing ran on it: the caller asks AWS and starts this host over
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
        if not step.is_shell:
            self._flush()
            self._run_task(step)
            return
        if self.batch.needs(step):
            self._flush()
        args = step.args
        if "when" in args and not eval_when(args["when"], self.vars, step):
            self.batch.add(Entry(step, result=self.result(step, "skipped", f"when: {args['when']} is false")))
            if args.get("register"):
                self.vars[args["register"]] = {**_SKIPPED}
            return
        self.batch.add(Entry(step, planned=self._plan(step), register=args.get("register")))

    def _render_args(self, step: Step) -> dict[str, Any]:
        return {k: (v if k == "when" else render_value(v, self.vars, step, k, self.template_dirs)) for k, v in step.args.items()}

    def _plan(self, step: Step) -> PlannedStep:
        """Render the step's values, check them again (a template may give a number), plan its shell."""
        args = self._render_args(step)
        check_values(step.kind, args, step_where(step))
        ctx = PlanContext(
            kind=step.kind,
            location=lambda: f"{where(step)[0]}: {step.label()}",
            render_template=lambda name: render_template_file(name, self.vars, step, self.template_dirs),
            base_dir=self.recipe.base_dir if self.recipe else None,
        )
        return plan_step(step.number, step_name(step.kind, args), step.kind, args, ctx)

    def result(self, step: Step, status: str, reason: str = "", **kw: Any) -> StepResult:
        """A locally decided result for ``step`` (reason masked)."""
        return StepResult(step.number, step.name, step.kind, status, self.masker(reason), check=self.check, **kw)

    def emit(self, result: StepResult) -> None:
        """Record a step's result and show it."""
        self.report.steps.append(result)
        self.reporter.step(self.label, result)

    def _flush(self) -> None:
        """Run the waiting batch (one exec) and report its steps in order."""
        entries = self.batch.take()
        if any(e.planned for e in entries):
            BatchRun(self, entries, confirm=self.confirm).run(self._get_host)
            self.confirm = None
        else:
            for e in entries:
                assert e.result is not None
                self.emit(e.result)

    def _run_task(self, step: Step) -> None:
        t0 = time.monotonic()
        args = step.args
        if "when" in args and not eval_when(args["when"], self.vars, step):
            self.emit(self.result(step, "skipped", f"when: {args['when']} is false"))
            return
        if self.confirm is not None:  # a task may act on the instance: be sure it is the one named so
            confirm_only(self._get_host(), self.confirm)
            self.confirm = None
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
            self.emit(self.result(step, "failed", str(err).splitlines()[0], duration=time.monotonic() - t0))
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
        self.emit(self.result(step, status, reason, duration=time.monotonic() - t0, command=self.masker("; ".join(tc.messages))))


#: What ``register`` stores for a step skipped by its ``when``.
_SKIPPED = {"stdout": "", "stderr": "", "exit_code": None, "changed": False, "skipped": True, "status": "skipped"}


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
    overrides, per_host = split_host_overrides(dict(vars or {}))
    values, secrets = resolve_vars(recipe, overrides)
    steps = select_steps(recipe.steps, tags=tuple(tags), skip_tags=tuple(skip_tags), start_at=start_at)
    reporter = reporter or TextReporter()
    targets: list[str | None] = list(hosts) if hosts else [values.get("name")]
    strangers = sorted(set(per_host) - {t for t in targets if t})
    if strangers:
        raise RecipeError(
            f"--set {strangers[0]}:…: '{strangers[0]}' is not a host of this run ({', '.join(t for t in targets if t) or 'none'})."
        )
    masker = Masker(secrets)
    t0 = time.monotonic()
    # One DescribeInstances for every host, here, rather than one per host thread at once.
    lookup = getattr(ctx, "instances_named", None)
    known = lookup([t for t in targets if t]) if lookup is not None and any(targets) else {}
    reach = getattr(ctx, "reachable", None)
    if known and reach is not None:  # instances from the host cache: confirmed by connecting
        known = reach(known)
    facts = [instance_facts(known[t]) for t in targets if t and t in known]
    fact_of = {t: i for i, t in enumerate(t for t in targets if t and t in known)}  # target → its place in facts
    per_recipe = inventory(recipe)
    plain = {k: v for k, v in values.items() if k not in recipe.vars or k in overrides or k in recipe.secrets}

    unconfirmed = getattr(ctx, "unconfirmed", None)

    def one(target: str | None) -> HostReport:
        inst = known.get(target or "")
        while True:
            mine = values_for(target, recipe.vars, per_recipe, plain, per_host)
            mine["hosts"] = facts
            if inst is not None:
                mine["tags"] = dict(inst.tags)
            confirm = None
            if target and inst is not None and unconfirmed is not None and unconfirmed(inst):
                confirm = Identity(inst.id, None if target == inst.id else target)
            run = HostRun(
                steps,
                mine,
                recipe=recipe,
                check=check,
                reporter=reporter,
                masker=masker,
                ctx=ctx,
                target=target,
                instance=inst,
                confirm=confirm,
            )
            try:
                return run.run()
            except NotConfirmed as err:  # a cached host that is not (or no longer) the one named so
                assert ctx is not None and target
                inst = ctx.not_confirmed(target, err.identity.instance_id, err.describe())
                if inst is not None and target in fact_of:  # `hosts` shows what AWS said (hosts not started yet see it)
                    facts[fact_of[target]] = instance_facts(inst)

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
