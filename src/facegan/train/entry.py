"""The one way into training: preset → config (or the resumed run's config) → speed check → loop.

``facegan train``, ``facegan run`` and the quality benchmarks all come in here, so a preset, a
resume's merge of options and its frozen-option check, and the speed check happen the same way
for each of them::

    cfg = resolve_config(given, resume=False)       # or resume=True with given["out"]
    result = run_training(cfg, resume=False)        # speed check (when auto), then training_loop
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from facegan.errors import FaceganError
from facegan.train.config import NESTED, TrainConfig, config_from_dict, config_to_dict, frozen_changes, merge_given
from facegan.train.loop import TrainResult, training_loop


def config_for_resume(out: str | Path, given: dict[str, Any]) -> TrainConfig:
    """The config of the run in ``out`` with the options ``given`` now applied on top.

    Options that shape the method, the models or the data stream
    (:data:`~facegan.train.config.FROZEN_ON_RESUME`, the nested configs among them, compared
    whole) cannot change; the nested ones given in part are merged onto the run's own.
    """
    import facegan.train.checkpoint as ckpt_io

    last = Path(out) / "last.pt"
    if not last.is_file():
        raise FaceganError(f"{last}: nothing to resume (no checkpoint in {out})")
    saved = ckpt_io.load(last)["config"]
    cfg = config_from_dict({**merge_given(saved, given), "out": str(out)})
    now = {k: v for k, v in config_to_dict(cfg).items() if k in given or k in NESTED}
    changed = frozen_changes(saved, now)
    if changed:
        raise FaceganError(
            f"{last}: cannot change {', '.join('--' + k.replace('_', '-') for k in changed)} when resuming "
            f"(the run has {', '.join(f'{k}={saved.get(k)!r}' for k in changed)}); start a new --out instead"
        )
    return cfg


def resolve_config(given: dict[str, Any], *, resume: bool = False) -> TrainConfig:
    """The config of a run from the options ``given`` (a ``preset`` among them is applied first,
    the given options on top); with ``resume``, those options on top of the run in ``given["out"]``."""
    from facegan.train.presets import resolve

    given = resolve(given.get("preset"), given)
    if not resume:
        return TrainConfig(**given)
    if "out" not in given:
        raise FaceganError("--resume needs --out, the run folder to continue")
    out = given.pop("out")
    return config_for_resume(out, given)


def run_training(cfg: TrainConfig, *, resume: bool = False, log: Callable[[str], None] | None = print,
                 tune: bool = True, tuned: Any = None, **loop_options: Any) -> TrainResult:
    """The speed check (when ``cfg`` leaves a speed setting to auto, ``tune`` is on and no
    ``tuned`` result is handed in), then :func:`~facegan.train.loop.training_loop`
    (``loop_options``: its other keyword arguments: ``scorer``, ``on_tick``,
    ``destroy_process_group``). ``log``: where the check says what it times."""
    from facegan.train.autotune import tune_run

    if tuned is None and tune:
        tuned = tune_run(cfg, log)
    return training_loop(cfg, resume=resume, tuned=tuned, **loop_options)
