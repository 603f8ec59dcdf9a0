"""``zerosum`` command line: LightningCLI with subclass mode for model and data.

- **Short names.** zerosum's modules, datamodules, callbacks and query strategies are imported before
  the parser is built, so ``--help`` lists them and ``--model VAAL --data DigitsDataModule`` works.
- **Facts the data knows** (number of classes, channels, image size, normalisation statistics) are
  linked into the model when the datamodule is built, so a config never writes them twice; a model
  receives (and saves in its hyperparameters) only those its ``__init__`` takes, so every checkpoint
  reloads with ``Module.load_from_checkpoint(file)`` and with ``--ckpt_path file``.
- **Active learning** is configured under ``active:`` (``--active.rounds 3 --active.strategy
  EntropyStrategy``); an ``ActiveLearning`` entry in ``trainer.callbacks`` works too.
- **One run = one folder**: ``lightning_logs/<config>/version_N/`` (``<config>`` is the config's path
  below ``configs/``, e.g. ``vaal/digits``) holds the saved config, TensorBoard logs,
  ``checkpoints/last.ckpt`` (written every epoch unless the config says otherwise) and whatever
  callbacks write there (active-learning rounds, predictions). ``fit --ckpt_path last`` (or a file of
  a run) continues in that run's folder; ``test/validate/predict --ckpt_path <file of a run>`` write
  into ``<run>/<subcommand>_<k>/``. The folder is printed when the run starts.
- **One line per mistake**: a bad option ends the command with ``error: <option>: <what is wrong>;
  allowed: <...>`` and exit status 2; ``--debug`` (or ``ZEROSUM_DEBUG=1``) shows the traceback.
- ``fit`` ends with a test of the final weights (``--test_after_fit false`` skips it).
"""

from __future__ import annotations

import difflib
import inspect
import os
import re
import sys
from pathlib import Path
from typing import Any, Optional

import lightning as L
import torch.distributed as dist
from jsonargparse import Namespace
from lightning.fabric.plugins.environments import SLURMEnvironment
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch import cli as lightning_cli
from lightning.pytorch.callbacks import BasePredictionWriter, LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn

# imported for their side effect too: jsonargparse resolves short class names among imported subclasses
import zerosum.callbacks  # noqa: F401
import zerosum.datamodules  # noqa: F401
import zerosum.modules  # noqa: F401
import zerosum.query  # noqa: F401
from zerosum.callbacks import ActiveLearning
from zerosum.callbacks.prediction_writer import PredictionWriter
from zerosum.checkpoints import (
    KEYWORDS,
    CheckpointError,
    describe,
    last_checkpoints,
    read_checkpoint,
    run_folder_of,
    writes_last_every_epoch,
)
from zerosum.errors import condense, one_line

#: datamodule attribute -> model argument, linked after the datamodule is instantiated.
DATA_LINKS = {"num_classes": "num_classes", "in_channels": "in_channels", "image_size": "image_size",
              "mean": "data_mean", "std": "data_std"}
#: set (to anything but "" or "0") to get tracebacks instead of one-line errors
DEBUG_ENV = "ZEROSUM_DEBUG"
#: errors that are the user's input, reported as one line (others keep their traceback)
USER_ERRORS = (ValueError, TypeError, OSError, MisconfigurationException,
               zerosum.datamodules.DataNotFoundError)
_PROJECT_FORMAT = re.compile(r"^[\w.\[\]'\"-]+: .*allowed:")


#: base classes a user never names (listed by --help, left out of an error's "allowed")
_BASES = ("ScoringStrategy", "VisionDataModule", "WrappedDataModule")


def _names(package, base: type) -> list[str]:
    return [n for n in package.__all__ if isinstance(getattr(package, n), type) and issubclass(getattr(package, n), base)
            and not inspect.isabstract(getattr(package, n)) and n not in _BASES]


def known_classes(key: str) -> Optional[str]:
    """The classes an option takes by short name, for the "unknown class" line."""
    last = key.rpartition(".")[2]
    if key == "model" or last == "module_class":
        names = _names(zerosum.modules, L.LightningModule)
    elif key == "data" or last in ("datamodule", "data"):
        names = _names(zerosum.datamodules, L.LightningDataModule)
    elif last == "strategy" and key.startswith("active"):
        names = _names(zerosum.query, zerosum.query.QueryStrategy)
    elif "callbacks" in key:
        names = _names(zerosum.callbacks, L.Callback) + ["lightning.pytorch.callbacks.<Callback>"]
    elif "optimizer" in last:
        return "a torch.optim class (SGD, Adam, AdamW, ...) or zerosum.optim.LARS, as class_path + init_args"
    elif "scheduler" in last:
        return "a torch.optim.lr_scheduler class (CosineAnnealingLR, StepLR, ...) or a zerosum.optim scheduler"
    else:
        return None
    return ", ".join(names) + " (or an import path 'package.module.Class')"


_debug_flag = False  # --debug of the running main()


def debug_mode() -> bool:
    return _debug_flag or os.environ.get(DEBUG_ENV, "") not in ("", "0")


class ZerosumParser(LightningArgumentParser):
    """The parser of every subcommand: one-line errors, data-linked model arguments not required."""

    def error(self, message: str, ex: Optional[Exception] = None):
        if debug_mode() or not self.exit_on_error:
            return super().error(message, ex)
        prog = self.prog.replace(" [options]", "")
        sys.stderr.write(f"tip: `{prog} --help` lists the options; --debug shows the full report\n")
        sys.stderr.write(f"error: {self._unrecognized(message, prog) or condense(message, known_classes)}\n")
        self.exit(2)

    def _unrecognized(self, message: str, prog: str) -> Optional[str]:
        """``unrecognized arguments: --trainer.max_epoch=3`` with the nearest options this parser has."""
        m = re.match(r"unrecognized arguments: (\S+)", message.strip())
        if not m:
            return None
        option = m.group(1).split("=", 1)[0]
        known = [s for action in self._actions for s in action.option_strings if s.startswith("--")]
        near = difflib.get_close_matches(option, known, n=3, cutoff=0.75)
        allowed = ", ".join(near) + " (the nearest)" if near else f"the options `{prog} --help` lists"
        return f"{option.lstrip('-')}: not an option; allowed: {allowed}"

    def add_class_arguments(self, theclass, nested_key=None, *args, **kwargs):
        added = super().add_class_arguments(theclass, nested_key, *args, **kwargs)
        if nested_key == "model" and inspect.isclass(theclass) and issubclass(theclass, L.LightningModule):
            # the parser of `--model.help X`: say where the data-linked arguments come from
            linked = {target: source for source, target in DATA_LINKS.items()}
            for action in self._actions:
                name = action.dest.rpartition(".")[2]
                if action.dest.startswith("model.") and name in linked:
                    action.required = False
                    action.help = f"[from data.{linked[name]}: give it only to override] {action.help or ''}".strip()
        return added


class ZerosumSaveConfig(SaveConfigCallback):
    """Saves the config into the run folder and prints the folder; a resumed run does not overwrite
    the config of the run it continues (it adds ``config_resume_<k>.yaml``)."""

    def setup(self, trainer, pl_module, stage: str) -> None:
        if not self.already_saved and not trainer.loggers and os.path.abspath(trainer.log_dir or ".") == os.getcwd():
            # no logger and no folder of its own: Lightning would drop config.yaml into the current directory
            rank_zero_info("zerosum: no logger, so the config is not saved (set trainer.default_root_dir to keep it)")
            self.already_saved = True
            return
        if not self.already_saved and trainer.log_dir is not None:  # log_dir: every rank asks
            if os.path.isfile(os.path.join(trainer.log_dir, self.config_filename)) and stage == "fit":
                k = 0
                while os.path.exists(os.path.join(trainer.log_dir, f"config_resume_{k}.yaml")):
                    k += 1
                self.config_filename = f"config_resume_{k}.yaml"
            rank_zero_info(f"zerosum: run folder {trainer.log_dir}")
        super().setup(trainer, pl_module, stage)


class _Instantiator(lightning_cli._InstantiatorFn):
    """Lightning records every instantiation link in the module's hyperparameters, even a link
    jsonargparse skipped because the chosen class has no such argument (``data_mean`` for a
    ``Classifier``); reloading then fails with "unexpected keyword argument". Only links whose value
    the constructor actually receives are recorded."""

    def __call__(self, class_type, *args, applied_instantiation_links: dict, **kwargs):
        prefix = f"{self.key}.init_args."
        given = {k: v for k, v in applied_instantiation_links.items()
                 if not k.startswith(prefix) or k[len(prefix):].split(".")[0] in kwargs}
        return super().__call__(class_type, *args, applied_instantiation_links=given, **kwargs)


def _accepted_parameters(cls: type) -> Optional[set[str]]:
    """``cls.__init__``'s argument names (None if it takes ``**kwargs``)."""
    params = inspect.signature(cls.__init__).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return None
    return {n for n in params if n != "self"}


def _import(class_path: str):
    module, _, name = class_path.rpartition(".")
    return getattr(__import__(module, fromlist=[name]), name)


def _items(value) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _class_path(entry) -> str:
    return str(entry.get("class_path", "")) if isinstance(entry, (dict, Namespace)) else ""


def run_name(config_paths) -> str:
    """The logger name of a run: the (first) config's path below ``configs/`` without suffix
    (``vaal/digits``), its stem outside ``configs/``, "" without a config."""
    paths = [Path(str(p)) for p in _items(config_paths)]
    if not paths:
        return ""
    path = paths[0].resolve()
    parts = path.with_suffix("").parts
    if path.parent.name.startswith("version_") and "lightning_logs" in parts[:-2]:
        i = len(parts) - 1 - parts[::-1].index("lightning_logs")
        return "/".join(parts[i + 1:-2])  # a run's saved config.yaml: the same name as that run
    if "configs" in parts[:-1]:
        i = len(parts) - 1 - parts[::-1].index("configs")
        return "/".join(parts[i + 1:])
    return path.stem


class ZerosumCLI(LightningCLI):
    """LightningCLI plus what the module docstring lists: data links, ``active:``, run folders, resume,
    a default ``last.ckpt`` every epoch, prediction files and one-line errors. Build it with :func:`run`."""

    def __init__(self, *args, **kwargs):
        self._resume_run: Optional[Path] = None
        self._saved_active: list[dict] = []  # ActiveLearning settings in the checkpoint fit resumes from
        super().__init__(*args, **kwargs)

    # ---- parser -------------------------------------------------------------------------------------
    def add_arguments_to_parser(self, parser) -> None:
        parser.add_argument("--test_after_fit", type=bool, default=True,
                            help="After fit, evaluate the final weights on the test split.")
        parser.add_argument(
            "--active", type=Optional[ActiveLearning], default=None,
            help="Active learning: the ActiveLearning callback's options (--active.strategy EntropyStrategy "
                 "--active.rounds 5 --active.budget 100 ...; --active.help ActiveLearning lists them). "
                 "Needs an ActivePoolDataModule as data.")
        for attr, arg in DATA_LINKS.items():
            parser.link_arguments(f"data.{attr}", f"model.init_args.{arg}", apply_on="instantiate")

    def _add_instantiators(self) -> None:
        self.parser.add_instantiator(_Instantiator(cli=self, key="model"), L.LightningModule, subclasses=True)
        self.parser.add_instantiator(_Instantiator(cli=self, key="data"), L.LightningDataModule, subclasses=True)

    # ---- checkpoints --------------------------------------------------------------------------------
    def _log_root(self) -> Optional[Path]:
        """Where this config's run folders lie (``<root>/version_N``), if the logger is one we know."""
        cfg = self.config[self.config.subcommand]
        trainer = cfg.trainer
        base = Path(trainer.get("default_root_dir") or os.getcwd())
        logger = trainer.get("logger")
        if logger is None or logger is True:
            return base / "lightning_logs" / run_name(cfg.get("config"))
        for entry in _items(logger)[:1]:
            if _class_path(entry).endswith(("TensorBoardLogger", "CSVLogger")):
                init = entry.get("init_args") or {}
                return Path(init.get("save_dir") or base) / str(init.get("name", "lightning_logs") or "")
        return None

    def _checkpoint_dirs(self) -> list[str]:
        dirs = []
        root = self._log_root()
        trainer = self.config[self.config.subcommand].trainer
        if root is not None:
            dirs.append(str(root / "version_*" / "checkpoints"))
        elif trainer.get("logger") is False:  # Lightning's folder without a logger
            dirs.append(str(Path(trainer.get("default_root_dir") or os.getcwd()) / "checkpoints"))
        for entry in _items(trainer.get("callbacks")):
            if _class_path(entry).endswith("ModelCheckpoint"):
                dirpath = (entry.get("init_args") or {}).get("dirpath")
                if dirpath:
                    dirs.append(str(dirpath))
        return dirs

    def _parse_ckpt_path(self) -> None:
        """``last`` -> the newest ``last.ckpt`` of this config's runs; a file is read once here, so an
        unreadable one fails before anything is built; its hyperparameters fill the model's arguments
        (Lightning's behaviour), restricted to those the model takes."""
        sub = self.config.get("subcommand")
        if not sub:
            return
        cfg = self.config[sub]
        ckpt = cfg.get("ckpt_path")
        if not ckpt:
            return
        if ckpt == "last":
            dirs = self._checkpoint_dirs()
            found = last_checkpoints(dirs)
            if not found:
                where = ", ".join(dirs) or "the checkpoint folders"
                if sub != "fit":
                    raise CheckpointError(f"ckpt_path: 'last' found no last.ckpt in {where}; allowed: the path "
                                          "of a .ckpt file")
                rank_zero_warn(f"ckpt_path: 'last' found no last.ckpt in {where}: fit starts from scratch")
                cfg.ckpt_path = None
                return
            ckpt = cfg.ckpt_path = found[0]
            rank_zero_info(f"zerosum: ckpt_path last -> {ckpt}")
        elif ckpt in KEYWORDS or str(ckpt).startswith("registry:"):
            return
        checkpoint = read_checkpoint(ckpt)
        if sub == "fit":
            self._saved_active = [state["settings"] for key, state in (checkpoint.get("callbacks") or {}).items()
                                  if key.split("{")[0] == ActiveLearning.__qualname__ and "settings" in state]
        run_dir = run_folder_of(ckpt)
        root = self._log_root()
        if run_dir is not None and (root is None or run_dir.parent == root.resolve() or self._default_logger()):
            self._resume_run = run_dir
        hparams = dict(checkpoint.get("hyper_parameters") or {})
        hparams.pop("_instantiator", None)
        if not hparams:
            return
        saved_class = hparams.pop("_class_path", None)
        model_class = _class_path(cfg.get("model"))
        if saved_class and model_class and saved_class != model_class:
            raise CheckpointError(
                f"ckpt_path: {ckpt!r} holds a {saved_class} but the model is {model_class}; allowed: a "
                f"checkpoint of {model_class}, or --model {saved_class}")
        accepted = _accepted_parameters(_import(saved_class or model_class)) if (saved_class or model_class) else None
        if accepted is not None:
            dropped = sorted(k for k in hparams if k not in accepted)
            if dropped:
                rank_zero_warn(f"ckpt_path: ignoring saved hyperparameters the model does not take: {', '.join(dropped)}")
            hparams = {k: v for k, v in hparams.items() if k in accepted}
        model = {"class_path": saved_class, "dict_kwargs": hparams} if saved_class else hparams
        self.config = self.parser.parse_object({sub: {"model": model}}, self.config)

    def _default_logger(self) -> bool:
        return self.config[self.config.subcommand].trainer.get("logger") in (None, True)

    # ---- trainer ------------------------------------------------------------------------------------
    def _logger(self) -> TensorBoardLogger:
        """The default logger: ``lightning_logs/<config>/version_N``, or the folder of the run a checkpoint
        belongs to (resume: the run itself; evaluation: ``<run>/<subcommand>_<k>``); no ``hp_metric``."""
        if self._resume_run is not None:
            return TensorBoardLogger(save_dir=str(self._resume_run.parent), name="", version=self._run_version(),
                                     default_hp_metric=False)
        return TensorBoardLogger(save_dir=str(self._log_root()), name="", version=SLURMEnvironment.job_id(),
                                 default_hp_metric=False)

    def _run_version(self) -> str:
        """The checkpoint's run (fit: continue it) or a fresh ``<run>/<subcommand>_<k>`` (evaluation)."""
        run_dir, sub = self._resume_run, self.subcommand
        if sub == "fit":
            return run_dir.name
        k = 0
        while (run_dir / f"{sub}_{k}").exists():
            k += 1
        return f"{run_dir.name}/{sub}_{k}"

    def instantiate_trainer(self, **kwargs: Any) -> L.Trainer:
        sub = self.subcommand
        init = self.config_init[sub]
        trainer_cfg = init["trainer"]
        callbacks = _items(trainer_cfg.get("callbacks"))
        active = init.get("active")
        if active is not None:
            if any(isinstance(c, ActiveLearning) for c in callbacks):
                raise ValueError("active: an ActiveLearning callback is also listed under trainer.callbacks; "
                                 "allowed: one of the two (the top-level `active:` key is preferred)")
            callbacks.append(active)
        is_active = any(isinstance(c, ActiveLearning) for c in callbacks)
        for saved in self._saved_active[:1]:  # a changed experiment stops before the run folder is touched
            for c in callbacks:
                if isinstance(c, ActiveLearning):
                    c.check_resume(saved)
        checkpoints = [c for c in callbacks if isinstance(c, ModelCheckpoint)]
        if sub == "fit" and trainer_cfg.get("enable_checkpointing") is not False:
            if not checkpoints:
                callbacks.append(ModelCheckpoint(save_last=True))  # <run>/checkpoints/last.ckpt every epoch
            elif not any(writes_last_every_epoch(c) for c in checkpoints):
                what = ", ".join(describe(c) for c in checkpoints)
                message = (f"trainer.callbacks: {what} leaves no last.ckpt at every epoch end (with save_top_k: 0 "
                           "Lightning writes it only when fit ends), so a killed run cannot resume; allowed: "
                           "save_last: true with save_top_k 1 or -1 and every_n_epochs 1, or no ModelCheckpoint "
                           "(zerosum then writes <run folder>/checkpoints/last.ckpt every epoch)")
                if is_active:
                    raise ValueError(message)
                rank_zero_warn(message)
        if sub != "fit" and not checkpoints and trainer_cfg.get("enable_checkpointing") is None:
            kwargs["enable_checkpointing"] = False  # nothing to save; spares Lightning's "dirpath has changed" note
        if sub == "predict" and not any(isinstance(c, BasePredictionWriter) for c in callbacks):
            callbacks.append(PredictionWriter())
        if trainer_cfg.get("logger") is False and any(isinstance(c, LearningRateMonitor) for c in callbacks):
            callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]  # it needs a logger
            rank_zero_info("zerosum: logger: false, so the config's LearningRateMonitor is left out")
        kwargs["callbacks"] = callbacks
        if trainer_cfg.get("logger") in (None, True):
            kwargs["logger"] = self._logger()
        elif self._resume_run is not None:
            self._place_configured_logger(trainer_cfg.get("logger"))
        return super().instantiate_trainer(**kwargs)

    def _place_configured_logger(self, logger) -> None:
        """A configured TensorBoard/CSV logger without a fixed version continues the checkpoint's run."""
        for lg in _items(logger)[:1]:
            if isinstance(lg, (TensorBoardLogger, CSVLogger)) and lg._version is None:
                if Path(lg.root_dir).resolve() == self._resume_run.parent:
                    lg._version = self._run_version()

    def after_fit(self) -> None:
        if self.config.get("fit", {}).get("test_after_fit", True) and not self.trainer.interrupted:
            self.trainer.test(self.model, datamodule=self.datamodule)


def run(args: Optional[list[str]] = None) -> ZerosumCLI:
    """Run the CLI on ``args`` (default ``sys.argv[1:]``) and return it (trainer, model, datamodule)."""
    return ZerosumCLI(
        L.LightningModule,
        L.LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        parser_class=ZerosumParser,
        save_config_callback=ZerosumSaveConfig,
        save_config_kwargs={"overwrite": True},
        auto_configure_optimizers=False,  # every zerosum module declares its own optimizers
        parser_kwargs={"prog": "zerosum"},  # also under `python -m zerosum` and in tests
        args=args,
    )


def close_process_group() -> None:
    """Wait for every rank, then destroy the default process group, if one is open.

    Lightning destroys NCCL groups at exit but leaves gloo ones (CPU DDP) to interpreter shutdown,
    where a group's threads can abort the process ("terminate called without an active exception")
    after the work is done. Call it only once every rank has finished without error.
    """
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def _strip_debug(args: Optional[list[str]]) -> tuple[Optional[list[str]], bool]:
    """``args`` (or ``sys.argv``, edited in place) without ``--debug``, and whether it was there."""
    argv = sys.argv[1:] if args is None else list(args)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    if args is None:
        sys.argv[1:] = argv
        return None, debug
    return argv, debug


def is_user_error(err: BaseException) -> bool:
    return isinstance(err, USER_ERRORS) or bool(_PROJECT_FORMAT.match(one_line(err)))


def main(args: Optional[list[str]] = None) -> None:
    """Entry point of ``zerosum`` and ``python -m zerosum``; ``args`` replaces ``sys.argv[1:]``.

    A bad input ends the run with one final line ``error: <option>: <what is wrong>; allowed: <...>``
    and exit status 2 (``--debug`` or ``ZEROSUM_DEBUG=1``: the traceback instead)."""
    global _debug_flag
    args, debug = _strip_debug(args)
    _debug_flag = debug
    try:
        run(args)
    except Exception as err:  # noqa: BLE001 - sorted below: user errors get one line, bugs their traceback
        if debug_mode() or not is_user_error(err):
            raise
        sys.stderr.write(f"zerosum: stopped ({type(err).__name__}; --debug shows the traceback)\n")
        sys.stderr.write(f"error: {one_line(err)}\n")
        sys.stderr.flush()
        raise SystemExit(2) from None
    finally:
        _debug_flag = False
    close_process_group()


if __name__ == "__main__":
    main()
