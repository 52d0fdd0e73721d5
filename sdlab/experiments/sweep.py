"""Sweeps: a grid of training runs from a sweep file (the library of `sdlab sweep`, see
`sdlab/commands/sweep.py`; `sdlab demo` runs its grid through `run_sweep` too).

A sweep file:

```yaml
base: ../../configs/organism.yaml   # a config YAML (relative to this file) or an inline mapping
overrides:                          # dotted keys applied to every run
  steps: 200
axes:                               # the grid: the cartesian product of all axes
  algorithm: [grpo, sdpo]           #   a list: values of one config key
  data.coverage: [8, 32, 200]
  seed: [0, 1, 2]
  method:                           #   a mapping: a *linked* axis; each label sets several keys
    grpo: {algorithm: grpo, actor.lr: 1.0e-6}
    sdpo: {algorithm: sdpo, actor.lr: 1.0e-5}
exclude:                            # optional: drop runs matching every key of an entry
  - {algorithm: grpo, teacher_context: [none, feedback]}
name: "{algorithm}-cov{data.coverage}-s{seed}"   # placeholders: axis names or any config key
output_dir: runs/organism-coverage  # relative to the current directory, like a config's output_dir
parallel: 1                         # runs at a time
```

Every run's config is built and validated before anything runs (a `ConfigError` names the run
and the key). Each run gets `<output_dir>/<name>/` with its resolved `config.yaml` (`output_dir`
set to that folder) and a `status.json` (`pending | running | done | failed`, error text, start and
end times, attempts). Re-running the same sweep skips finished runs, resumes interrupted or
failed runs that have a complete checkpoint (`resume=True`) and restarts the others. Each run is
a subprocess `python -m sdlab.cli train <run>/config.yaml [--resume]` logging to
`<run>/train.log`; a failed run is recorded and the others go on; the exit code is 1 if any
failed. `<output_dir>/sweep.json` records the expanded grid.
"""

from __future__ import annotations

import copy
import datetime as _dt
import fnmatch
import hashlib
import itertools
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import yaml

from ..config import Config, ConfigError, config_from_dict, flatten, merge_overrides
from ..engine.runs import pid_alive

__all__ = [
    "Axis",
    "RunFailed",
    "RunSpec",
    "SubprocessRunner",
    "Sweep",
    "differing_keys",
    "expand",
    "format_grid",
    "inprocess_runner",
    "load_sweep",
    "plan",
    "prepare",
    "read_status",
    "run_sweep",
    "select",
    "sigterm_as_interrupt",
    "subprocess_runner",
    "sweep_from_dict",
    "write_status",
]

SWEEP_KEYS = ("base", "overrides", "axes", "exclude", "name", "output_dir", "parallel")
STATES = ("pending", "running", "done", "failed")
# Keys that name a run rather than configure it: never "differing", never hashed.
NAMING_KEYS = ("output_dir", "logging.run_name")


class RunFailed(RuntimeError):
    """A run of the sweep did not finish (the message is recorded in its status.json)."""


# ---------------------------------------------------------------------------- sweep files


@dataclass
class Axis:
    name: str
    labels: list[Any]
    """What names the values (the value itself for a plain axis, the label of a linked axis)."""
    settings: list[dict[str, Any]]
    """Per label: the dotted config keys it sets."""
    linked: bool = False


@dataclass
class Sweep:
    base: dict[str, Any]
    overrides: dict[str, Any]
    axes: list[Axis]
    name: str | None
    output_dir: Path
    parallel: int = 1
    exclude: list[dict[str, Any]] = field(default_factory=list)
    source: Path | None = None
    base_source: str = "inline"


@dataclass
class RunSpec:
    name: str
    dir: Path
    values: dict[str, Any]
    """Axis name -> label of this run."""
    settings: dict[str, Any]
    """Dotted key -> value set by the axes."""
    config: Config

    @property
    def config_path(self) -> Path:
        return self.dir / "config.yaml"

    @property
    def status_path(self) -> Path:
        return self.dir / "status.json"


def _read_yaml(path: Path, what: str) -> Any:
    if not path.exists():
        raise ConfigError(f"{what} not found: {path}")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML: {e}") from None


def load_sweep(path: str | Path, *, output_dir: str | Path | None = None, parallel: int | None = None) -> Sweep:
    path = Path(path)
    data = _read_yaml(path, "sweep file")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a sweep file must be a mapping with base/overrides/axes/name/output_dir")
    sweep = sweep_from_dict(data, base_dir=path.parent, source=path)
    if output_dir is not None:
        sweep.output_dir = Path(output_dir)
    if parallel is not None:
        sweep.parallel = _positive_int(parallel, "parallel")
    return sweep


def _positive_int(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"sweep {key}: expected an integer >= 1, got {value!r}")
    return value


def sweep_from_dict(data: dict[str, Any], *, base_dir: str | Path = ".", source: Path | None = None) -> Sweep:
    where = f"{source}: " if source else "sweep: "
    unknown = sorted(set(data) - set(SWEEP_KEYS))
    if unknown:
        raise ConfigError(f"{where}unknown sweep key {unknown[0]!r}; valid keys: {', '.join(SWEEP_KEYS)}")
    base_spec = data.get("base") or {}
    if isinstance(base_spec, str):
        base_path = Path(base_spec)
        if not base_path.is_absolute():
            base_path = Path(os.path.normpath(Path(base_dir) / base_path))
        base = _read_yaml(base_path, "sweep base config") or {}
        if not isinstance(base, dict):
            raise ConfigError(f"{base_path}: the top level must be a mapping")
        base_source = str(base_path)
    elif isinstance(base_spec, dict):
        base, base_source = copy.deepcopy(base_spec), "inline"
    else:
        raise ConfigError(f"{where}base: expected a config path or a mapping, got {base_spec!r}")
    overrides = data.get("overrides") or {}
    if not isinstance(overrides, dict):
        raise ConfigError(f"{where}overrides: expected a mapping of dotted keys, got {overrides!r}")
    axes_spec = data.get("axes") or {}
    if not isinstance(axes_spec, dict):
        raise ConfigError(f"{where}axes: expected a mapping of key -> list of values")
    axes = [_parse_axis(str(k), v, where) for k, v in axes_spec.items()]
    for axis in axes:
        for s in axis.settings:
            for key in s:
                if key in NAMING_KEYS:
                    raise ConfigError(f"{where}axes.{axis.name}: {key} is set by the sweep for each run")
    exclude = data.get("exclude") or []
    if not isinstance(exclude, list) or not all(isinstance(e, dict) and e for e in exclude):
        raise ConfigError(f"{where}exclude: expected a list of non-empty mappings")
    name = data.get("name")
    if name is not None and not isinstance(name, str):
        raise ConfigError(f"{where}name: expected a pattern string like \"{{algorithm}}-s{{seed}}\"")
    output_dir = data.get("output_dir")
    if output_dir is None:
        stem = source.stem if source else "sweep"
        output_dir = f"runs/{stem}"
    if not isinstance(output_dir, str):
        raise ConfigError(f"{where}output_dir: expected a path string")
    parallel = _positive_int(data.get("parallel", 1), "parallel")
    return Sweep(base=base, overrides=flatten(overrides), axes=axes, name=name, output_dir=Path(output_dir),
                 parallel=parallel, exclude=exclude, source=source, base_source=base_source)


def _parse_axis(name: str, spec: Any, where: str) -> Axis:
    if isinstance(spec, dict):  # linked axis: label -> {dotted key: value}
        if not spec:
            raise ConfigError(f"{where}axes.{name}: a linked axis needs at least one label")
        labels, settings = [], []
        for label, sets in spec.items():
            if not isinstance(sets, dict) or not sets:
                raise ConfigError(f"{where}axes.{name}.{label}: expected a mapping of dotted keys to values")
            labels.append(label)
            settings.append(flatten(sets))
        return Axis(name, labels, settings, linked=True)
    if isinstance(spec, (list, tuple)):
        if not spec:
            raise ConfigError(f"{where}axes.{name}: the list of values is empty")
        values = list(spec)
        settings = [flatten({name: v}) if isinstance(v, dict) else {name: v} for v in values]
        return Axis(name, values, settings)
    raise ConfigError(f"{where}axes.{name}: expected a list of values (or a mapping label -> settings), got {spec!r}")


# ---------------------------------------------------------------------------- expansion


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "+".join(_fmt(v) for v in value)
    if isinstance(value, dict):
        return "+".join(f"{k}={_fmt(v)}" for k, v in value.items())
    return str(value)


def _describe(values: dict[str, Any]) -> str:
    return ", ".join(f"{k}={_fmt(v)}" for k, v in values.items()) or "no axes"


_PLACEHOLDER = re.compile(r"\{([^{}:]+)(?::([^{}]*))?\}")
_UNSAFE = re.compile(r"[^A-Za-z0-9._+=-]+")


def _defaults_flat() -> dict[str, Any]:
    return flatten(Config().to_dict())


def _run_name(pattern: str | None, values: dict[str, Any], flat: dict[str, Any], defaults: dict[str, Any]) -> str:
    if pattern is None:
        name = "-".join(_fmt(v) for v in values.values()) or "run"
    else:
        def sub(m: re.Match) -> str:
            key, spec = m.group(1).strip(), m.group(2)
            if key in values:
                value = values[key]
            elif key in flat:
                value = flat[key]
            elif key in defaults:
                value = defaults[key]
            else:
                raise ConfigError(f"sweep name pattern {pattern!r}: {{{key}}} is neither an axis nor a config key")
            if spec:
                try:
                    return format(value, spec)
                except (TypeError, ValueError) as e:
                    raise ConfigError(f"sweep name pattern {pattern!r}: cannot format {key}={value!r} "
                                      f"with {spec!r}: {e}") from None
            return _fmt(value)

        name = _PLACEHOLDER.sub(sub, pattern)
    name = _UNSAFE.sub("_", name).strip("._") or "run"
    return name


def _matches(entry: dict[str, Any], values: dict[str, Any], flat: dict[str, Any]) -> bool:
    for key, want in flatten(entry).items():
        have = values[key] if key in values else flat.get(key, _MISSING)
        options = want if isinstance(want, list) else [want]
        if have not in options:
            return False
    return True


_MISSING = object()


def config_hash(cfg: Config) -> str:
    flat = {k: v for k, v in flatten(cfg.to_dict()).items() if k not in NAMING_KEYS}
    blob = json.dumps(flat, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def expand(sweep: Sweep) -> list[RunSpec]:
    """The grid: one validated RunSpec per combination of axis values (minus `exclude`)."""
    defaults = _defaults_flat()
    runs: list[RunSpec] = []
    seen: dict[str, dict[str, Any]] = {}
    combos = itertools.product(*[range(len(a.labels)) for a in sweep.axes]) if sweep.axes else [()]
    for combo in combos:
        values = {a.name: a.labels[i] for a, i in zip(sweep.axes, combo)}
        settings: dict[str, Any] = {}
        for a, i in zip(sweep.axes, combo):
            settings.update(a.settings[i])
        data: dict[str, Any] = {}
        try:
            merge_overrides(data, flatten(copy.deepcopy(sweep.base)))  # nested or dotted keys alike
            merge_overrides(data, dict(sweep.overrides))
            merge_overrides(data, dict(settings))
        except ConfigError as e:
            raise ConfigError(f"sweep run ({_describe(values)}): {e}") from None
        flat = flatten(data)
        if any(_matches(entry, values, {**defaults, **flat}) for entry in sweep.exclude):
            continue
        name = _run_name(sweep.name, values, flat, defaults)
        if name in seen:
            raise ConfigError(
                f"sweep: two runs get the name {name!r} ({_describe(seen[name])} and {_describe(values)}); "
                "put every axis that varies into `name:`"
            )
        seen[name] = values
        run_dir = sweep.output_dir / name
        data["output_dir"] = str(run_dir)
        logging_section = data.setdefault("logging", {})
        if isinstance(logging_section, dict) and logging_section.get("run_name") is None:
            logging_section["run_name"] = name
        try:
            cfg = config_from_dict(data)
        except ConfigError as e:
            raise ConfigError(f"sweep run {name!r}: {e}") from None
        runs.append(RunSpec(name=name, dir=run_dir, values=values, settings=settings, config=cfg))
    if not runs:
        raise ConfigError("sweep: the grid is empty (every run was excluded)")
    return runs


def differing_keys(configs: Iterable[Config | dict], exclude: Iterable[str] = NAMING_KEYS) -> list[str]:
    """Dotted config keys whose values are not the same in every config (in schema order)."""
    flats = [flatten(c.to_dict() if isinstance(c, Config) else c) for c in configs]
    if not flats:
        return []
    skip = set(exclude)
    keys: list[str] = []
    for f in flats:
        for k in f:
            if k not in keys:
                keys.append(k)
    out = []
    for k in keys:
        if k in skip:
            continue
        vals = [json.dumps(f.get(k, "<unset>"), sort_keys=True, default=str) for f in flats]
        if len(set(vals)) > 1:
            out.append(k)
    return out


def select(runs: list[RunSpec], only: str | None) -> list[RunSpec]:
    """Runs whose name matches any of the comma-separated glob patterns in `only`."""
    if not only:
        return runs
    patterns = [p.strip() for p in only.split(",") if p.strip()]
    chosen = [r for r in runs if any(fnmatch.fnmatchcase(r.name, p) or p == r.name for p in patterns)]
    if not chosen:
        raise ConfigError(f"sweep --only {only!r} matches no run; runs: {', '.join(r.name for r in runs)}")
    return chosen


# ---------------------------------------------------------------------------- status


def _now() -> str:
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


def read_status(run_dir: Path) -> dict[str, Any] | None:
    path = Path(run_dir) / "status.json"
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, OSError):
        return None


def write_status(run_dir: Path, status: dict[str, Any]) -> None:
    path = Path(run_dir) / "status.json"
    tmp = path.with_name(f".status.json.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(status, indent=2) + "\n")
    tmp.replace(path)


def has_checkpoint(run_dir: Path) -> bool:
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return False
    from ..engine.checkpoint import complete_checkpoints

    return bool(complete_checkpoints(root))  # (resuming verifies it, and falls back to an older one)


@dataclass
class Plan:
    run: RunSpec
    action: str
    """skip (done) | busy (another sweep process is running it) | resume | start | stale (config changed)."""
    status: dict[str, Any] | None
    note: str = ""


def plan(runs: list[RunSpec]) -> list[Plan]:
    """What running the sweep now would do to each run (reads status.json; writes nothing)."""
    out = []
    for r in runs:
        st = read_status(r.dir)
        state = (st or {}).get("state", "pending")
        changed = st is not None and st.get("config_hash") not in (None, config_hash(r.config))
        if state == "done":
            note = "config changed since it finished; delete the folder to run it again" if changed else ""
            out.append(Plan(r, "skip", st, note))
        elif (state == "running" and st.get("host") == socket.gethostname() and st.get("sweep_pid")
              and st["sweep_pid"] != os.getpid() and pid_alive(int(st["sweep_pid"]))):
            out.append(Plan(r, "busy", st, f"being run by sweep process {st['sweep_pid']}"))
        elif state in ("running", "failed") and has_checkpoint(r.dir):
            if changed:
                out.append(Plan(r, "stale", st, "config changed since the run started; delete its folder "
                                                 "(or restore the sweep file) to continue"))
            else:
                out.append(Plan(r, "resume", st))
        else:
            out.append(Plan(r, "start", st))
    return out


def prepare(runs: list[RunSpec], sweep: Sweep | None = None) -> None:
    """Create the run folders with config.yaml and status.json (pending); write sweep.json.
    Folders of finished runs, runs in progress elsewhere and runs whose config changed since they
    started are left untouched."""
    for p in plan(runs):
        r, st = p.run, p.status
        if p.action in ("skip", "busy", "stale"):
            continue
        r.dir.mkdir(parents=True, exist_ok=True)
        r.config.save(r.config_path)
        if st is None:
            write_status(r.dir, {"name": r.name, "state": "pending", "error": None, "started_at": None,
                                 "ended_at": None, "attempts": 0, "config_hash": config_hash(r.config)})
    if sweep is not None:
        write_sweep_json(sweep, runs)


def write_sweep_json(sweep: Sweep, runs: list[RunSpec]) -> Path:
    keys = differing_keys([r.config for r in runs])
    flats = {r.name: flatten(r.config.to_dict()) for r in runs}
    doc = {
        "sweep_file": str(sweep.source) if sweep.source else None,
        "base": sweep.base_source,
        "output_dir": str(sweep.output_dir),
        "name": sweep.name,
        "parallel": sweep.parallel,
        "axes": {a.name: a.labels for a in sweep.axes},
        "overrides": sweep.overrides,
        "differing_keys": keys,
        "runs": [{"name": r.name, "dir": str(r.dir), "axes": r.values,
                  "differing": {k: flats[r.name].get(k) for k in keys}} for r in runs],
    }
    sweep.output_dir.mkdir(parents=True, exist_ok=True)
    path = sweep.output_dir / "sweep.json"
    path.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    return path


# ---------------------------------------------------------------------------- runners

Runner = Callable[[RunSpec, bool], None]


def _pythonpath_env(threads: int | None, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = os.environ.copy()
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env.setdefault("TQDM_MININTERVAL", "10")
    if threads:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env.setdefault(var, str(threads))
    env.update(extra or {})
    return env


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip().splitlines()[-lines:])


class SubprocessRunner:
    """Runs `python -m sdlab.cli train <run>/config.yaml [--resume]`, output appended to train.log.

    `threads` sets OMP/MKL_NUM_THREADS where the environment does not; `env` sets variables for
    every run whatever the environment says (e.g. the demo's one thread per run)."""

    def __init__(self, threads: int | None = None, env: dict[str, str] | None = None):
        self.threads = threads
        self.env = dict(env or {})
        self._procs: dict[str, subprocess.Popen] = {}
        self._lock = threading.Lock()
        self.stopping = False

    def __call__(self, run: RunSpec, resume: bool) -> None:
        cmd = [sys.executable, "-m", "sdlab.cli", "train", str(run.config_path)] + (["--resume"] if resume else [])
        log_path = run.dir / "train.log"
        with open(log_path, "a") as log:
            log.write(f"\n=== {_now()} {' '.join(cmd)}\n")
            log.flush()
            with self._lock:
                if self.stopping:
                    raise RunFailed("interrupted before it started")
                proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=os.getcwd(),
                                        env=_pythonpath_env(self.threads, self.env), stdin=subprocess.DEVNULL)
                self._procs[run.name] = proc
            try:
                rc = proc.wait()
            except BaseException:  # KeyboardInterrupt while waiting: do not leave the child behind
                _stop_process(proc)
                raise
            finally:
                with self._lock:
                    self._procs.pop(run.name, None)
        if rc != 0:
            why = "interrupted" if rc in (-2, 130, -15, 143) or self.stopping else f"exit code {rc}"
            raise RunFailed(f"{why}; last lines of {log_path}:\n{_tail(log_path)}")

    def terminate(self) -> None:
        with self._lock:
            self.stopping = True
            procs = list(self._procs.values())
        for p in procs:
            _stop_process(p)


def _stop_process(proc: subprocess.Popen, grace: float = 30.0) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def subprocess_runner(run: RunSpec, resume: bool) -> None:
    SubprocessRunner()(run, resume)


def inprocess_runner(run: RunSpec, resume: bool) -> None:
    """Train in this process (no isolation; handy for debugging and tests)."""
    from ..engine.trainer import train

    train(run.config, resume=resume)


# ---------------------------------------------------------------------------- execution


def _archive_stale_metrics(run_dir: Path, attempt: int) -> None:
    """Before a fresh restart, move the metrics of an earlier, abandoned attempt out of the way."""
    for name in ("metrics.jsonl", "metrics.orphaned.jsonl"):
        p = run_dir / name
        if p.exists():
            p.replace(run_dir / f"{p.stem}.attempt-{attempt}.jsonl")


def run_sweep(runs: list[RunSpec], *, parallel: int = 1, runner: Runner | None = None,
              log: Callable[[str], None] = print, poll: Callable[[], None] | None = None,
              poll_interval: float = 0.5) -> dict[str, str]:
    """Run (or skip / resume) every run; returns {name: final state}. Never raises for a failed
    run: its error goes to its status.json. KeyboardInterrupt stops the sweep (running runs are
    terminated, through the runner's `terminate()` where it has one, and stay resumable) and is
    re-raised. `poll` (e.g. a progress bar reading the runs' metrics.jsonl) is called from this
    thread every `poll_interval` seconds while runs are in progress, and once at the end."""
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    if runner is None:
        threads = max(1, (os.cpu_count() or 1) // max(1, parallel)) if parallel > 1 else None
        runner = SubprocessRunner(threads=threads)
    plans = plan(runs)
    results: dict[str, str] = {}
    todo: list[Plan] = []
    for p in plans:
        if p.action == "skip":
            results[p.run.name] = "done"
            log(f"[sweep] {p.run.name}: done, skipped" + (f" ({p.note})" if p.note else ""))
        elif p.action == "busy":
            results[p.run.name] = "running"
            log(f"[sweep] {p.run.name}: {p.note}, skipped")
        elif p.action == "stale":
            results[p.run.name] = "failed"
            st = dict(p.status or {})
            st.update(state="failed", error=p.note, ended_at=_now())
            write_status(p.run.dir, st)
            log(f"[sweep] {p.run.name}: FAILED: {p.note}")
        else:
            todo.append(p)
    stop = threading.Event()

    def execute(p: Plan) -> str:
        r = p.run
        if stop.is_set():
            return "pending"
        st = dict(read_status(r.dir) or {"name": r.name, "attempts": 0})
        resume = p.action == "resume"
        attempts = int(st.get("attempts") or 0)
        if not resume and attempts:
            _archive_stale_metrics(r.dir, attempts)
        st.update(name=r.name, state="running", error=None, started_at=_now(), ended_at=None,
                  attempts=attempts + 1, resumed=resume, host=socket.gethostname(), sweep_pid=os.getpid(),
                  config_hash=config_hash(r.config))
        write_status(r.dir, st)
        log(f"[sweep] {r.name}: {'resuming' if resume else 'starting'} ({r.dir})")
        t0 = time.time()
        try:
            runner(r, resume)
        except BaseException as e:  # noqa: BLE001 - a failed run must not stop the others
            msg = str(e) or type(e).__name__
            if (isinstance(e, KeyboardInterrupt) or stop.is_set()) and not msg.startswith("interrupted"):
                msg = "interrupted: " + msg
            elif not isinstance(e, RunFailed):
                msg = f"{type(e).__name__}: {msg}"
            st.update(state="failed", error=msg, ended_at=_now(), seconds=round(time.time() - t0, 1))
            write_status(r.dir, st)
            log(f"[sweep] {r.name}: FAILED after {time.time() - t0:.0f}s: {msg.splitlines()[0] if msg else ''}")
            if isinstance(e, KeyboardInterrupt):
                raise
            return "failed"
        st.update(state="done", error=None, ended_at=_now(), seconds=round(time.time() - t0, 1))
        write_status(r.dir, st)
        log(f"[sweep] {r.name}: done in {time.time() - t0:.0f}s")
        return "done"

    parallel = max(1, int(parallel))
    if parallel == 1 and poll is None:  # in this thread (an in-process runner trains here)
        try:
            for p in todo:
                results[p.run.name] = execute(p)
        except KeyboardInterrupt:
            stop.set()
            raise
    else:
        with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="sweep") as pool:
            futures = {pool.submit(execute, p): p for p in todo}
            pending = set(futures)
            try:
                while pending:
                    done, pending = wait(pending, timeout=poll_interval, return_when=FIRST_COMPLETED)
                    for f in done:
                        results[futures[f].run.name] = f.result()
                    if poll is not None:
                        poll()
            except BaseException:  # Ctrl-C or SIGTERM (a second one may surface as a lock's RuntimeError), a poll error
                stop.set()
                pool.shutdown(wait=False, cancel_futures=True)
                terminate = getattr(runner, "terminate", None)
                if terminate is not None:
                    terminate()
                raise
    if poll is not None:
        poll()
    return {r.name: results.get(r.name, "pending") for r in runs}


def format_grid(runs: list[RunSpec], plans: list[Plan] | None = None) -> str:
    """The grid as a text table: run name, every differing config key and (with `plans`) what
    running the sweep now would do."""
    keys = differing_keys([r.config for r in runs])
    flats = [flatten(r.config.to_dict()) for r in runs]
    headers = ["name"] + keys + (["status"] if plans is not None else [])
    rows = []
    for i, r in enumerate(runs):
        row = [r.name] + [_fmt(flats[i].get(k)) for k in keys]
        if plans is not None:
            p = plans[i]
            state = (p.status or {}).get("state", "new" if p.status is None else "pending")
            row.append({"skip": "done", "resume": f"{state} -> resume", "start": f"{state} -> start",
                        "busy": "running elsewhere", "stale": "config changed"}[p.action])
        rows.append(row)
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in rows]
    return "\n".join(line.rstrip() for line in lines)


class sigterm_as_interrupt:
    """`with sigterm_as_interrupt(): run_sweep(...)`: a SIGTERM (`kill`, a job scheduler) stops the
    runs like Ctrl-C does (main thread only; the old handler is restored on exit)."""

    def __enter__(self):
        import signal

        self.old = None
        if threading.current_thread() is threading.main_thread():
            def handler(signum, frame):
                raise KeyboardInterrupt(f"signal {signum}")

            self.old = signal.signal(signal.SIGTERM, handler)
        return self

    def __exit__(self, *exc):
        import signal

        if self.old is not None:
            signal.signal(signal.SIGTERM, self.old)
        return False



