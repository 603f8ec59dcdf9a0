"""Networks by name, by class path, or your own: what every module's ``net`` argument accepts.

A module's ``net`` (``encoder`` / ``selection_net``) argument is a :data:`NetSpec`:

- a **registry name**: a key of :data:`NETS` (``small_cnn``, ``resnet18_cifar``, ...; add yours
  with :func:`register_net`) or ``torchvision.<arch>`` (e.g. ``torchvision.resnet50``);
- a **dotted import path** of a class or function (``myproj.nets.MyNet``);
- a **class path mapping** from YAML, ``{class_path: myproj.nets.MyNet, init_args: {...}}``;
- an **nn.Module instance** (Python only), used as it is;
- a class or function (Python).

Classes and functions are called with their ``init_args`` and the module's ``net_args``, plus
``num_classes``, ``in_channels`` and ``image_size`` (linked from the data by the CLI) for those of
the three their signature takes and the config does not set, so a config never writes them twice.

The result follows zerosum's network contract (``forward`` -> logits, ``features(x)`` -> ``(B, d)``,
``feature_dim``; see :mod:`zerosum.nets.adapter`): a network that already does is returned as it is,
any other is wrapped in :class:`~zerosum.nets.adapter.OwnNet`, which splits ``features`` off its
``fc`` / ``head`` / ``classifier`` layer and infers ``feature_dim`` when it is not declared.

An nn.Module instance is not a hyperparameter (modules ignore it in ``save_hyperparameters``, see
:func:`zerosum.nets.hparams.save_hyperparameters`): pass it again to ``load_from_checkpoint``. Names,
import paths and class path mappings are stored, so those checkpoints reload by themselves.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any, Callable, Optional, Protocol, Sequence, Union, runtime_checkable

import torch
from torch import nn

from zerosum.nets.adapter import OwnNet, find_head, follows_contract, linears
from zerosum.nets.base import FeatureClassifier
from zerosum.nets.preact_resnet import preact_resnet18
from zerosum.nets.resnet_cifar import resnet18_cifar, resnet34_cifar
from zerosum.nets.small_cnn import SmallCNN
from zerosum.nets.torchvision_net import TorchvisionNet
from zerosum.nets.vgg import VGG16BN
from zerosum.nets.vit import vit_small, vit_tiny

NETS: dict[str, Callable[..., nn.Module]] = {
    "small_cnn": SmallCNN,
    "resnet18_cifar": resnet18_cifar,
    "resnet34_cifar": resnet34_cifar,
    "vgg16_bn": VGG16BN,
    "preact_resnet18": preact_resnet18,
    "vit_tiny": vit_tiny,
    "vit_small": vit_small,
}


@runtime_checkable
class Network(Protocol):
    """Any ``nn.Module`` (structurally: something with ``forward``). The type of a network passed as an
    instance; jsonargparse lists no subclasses for it, so ``--help`` stays short."""

    def forward(self, x: torch.Tensor) -> torch.Tensor: ...


#: What a ``net`` argument accepts: a registry name or dotted import path, a ``{class_path,
#: init_args}`` mapping (YAML), or a network instance (Python).
NetSpec = Union[str, dict[str, Any], Network]

#: hparams value standing in for a network given as an instance (see :func:`not_stored`)
NOT_STORED = "<not stored: "

#: arguments filled in from the data when a class takes them and the config does not set them
DATA_ARGUMENTS = ("num_classes", "in_channels", "image_size")


def register_net(name: str, builder: Callable[..., nn.Module]) -> None:
    """Make ``builder(num_classes=..., in_channels=..., **net_args)`` available as ``net: name``."""
    NETS[name] = builder


def allowed() -> str:
    return (f"a registry name ({', '.join(sorted(NETS))}), 'torchvision.<arch>', a dotted import path "
            "'package.module.Class', a {class_path, init_args} mapping, or an nn.Module instance (Python)")


def not_stored(net: nn.Module) -> str:
    """The hyperparameter recorded for a network given as an instance: says what to pass again."""
    return f"{NOT_STORED}{type(net).__module__}.{type(net).__qualname__} instance>"


def import_object(path: str, argument: str) -> Any:
    """The object at a dotted import path ``package.module.Name``."""
    module_name, _, attr = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError) as err:
        raise ValueError(f"{argument}: cannot import {path!r} ({type(err).__name__}: {err}); "
                         f"allowed: {allowed()}") from err


def accepted(builder: Callable, name: str) -> bool:
    try:
        return name in inspect.signature(builder).parameters
    except (TypeError, ValueError):
        return False


def call_builder(builder: Callable, kwargs: dict[str, Any], data: dict[str, Any], argument: str,
                 registered: bool = False) -> nn.Module:
    """``builder(**kwargs)`` plus the data facts its signature takes and ``kwargs`` leaves unset
    (a registered builder always receives ``num_classes`` and ``in_channels``)."""
    kwargs = dict(kwargs)
    for key, value in data.items():
        always = registered and key in ("num_classes", "in_channels")
        if value is not None and key not in kwargs and (always or accepted(builder, key)):
            kwargs[key] = value
    name = getattr(builder, "__qualname__", repr(builder))
    try:
        net = builder(**kwargs)
    except TypeError as err:
        raise TypeError(f"{argument}: {name}({', '.join(f'{k}=...' for k in kwargs)}) failed: {err}; allowed: "
                        f"the arguments {name} takes ({argument}_args / init_args)") from err
    if not isinstance(net, nn.Module):
        raise TypeError(f"{argument}: {name} returned {type(net).__name__}, not an nn.Module; "
                        f"allowed: {allowed()}")
    return net


def resolve(spec: Any, data: dict[str, Any], net_args: dict[str, Any], argument: str) -> nn.Module:
    """The nn.Module a spec describes (before the contract is checked)."""
    if isinstance(spec, nn.Module):
        if net_args:
            raise ValueError(f"{argument}_args: only used when {argument} is a name or a class path, "
                             f"got an nn.Module instance and {sorted(net_args)}; allowed: build the "
                             "instance with those options yourself")
        return spec
    if isinstance(spec, dict):
        unknown = set(spec) - {"class_path", "init_args"}
        if "class_path" not in spec or unknown:
            raise ValueError(f"{argument}: a mapping needs class_path (and optionally init_args), got keys "
                             f"{sorted(spec)}; allowed: {allowed()}")
        return resolve(spec["class_path"], data, {**(spec.get("init_args") or {}), **net_args}, argument)
    if isinstance(spec, str):
        if spec.startswith(NOT_STORED):
            raise ValueError(f"{argument}: this model was built with {spec[len(NOT_STORED):-1]}, which "
                             f"checkpoints do not store; pass it again, e.g. "
                             f"load_from_checkpoint(path, {argument}=MyNet(...)); allowed: {allowed()}")
        if spec in NETS:
            return call_builder(NETS[spec], net_args, data, argument, registered=True)
        arch = spec.split(".", 1)[1] if spec.startswith("torchvision.") else None
        if arch is not None and "." not in arch:
            return TorchvisionNet(arch, data["num_classes"], data["in_channels"], **net_args)
        if "." in spec:
            return resolve(import_object(spec, argument), data, net_args, argument)
        raise ValueError(f"{argument}: unknown net {spec!r}; allowed: {allowed()}")
    if callable(spec):
        return call_builder(spec, net_args, data, argument)
    raise TypeError(f"{argument}: got {type(spec).__name__}; allowed: {allowed()}")


def build_net(net: Any, num_classes: int, in_channels: int = 3, *, argument: str = "net", encoder: bool = False,
              sample_shape: Optional[Sequence[int]] = None, **net_args) -> nn.Module:
    """The network a :data:`NetSpec` describes, following zerosum's network contract.

    Args:
        net: a registry name, ``torchvision.<arch>``, a dotted import path, a ``{class_path,
            init_args}`` mapping, an nn.Module instance, or a class or function (see the module doc).
        num_classes: the data's number of classes (given to builders that take it).
        in_channels: the data's number of channels (given to builders that take it).
        argument: the option's name in error messages (``net``, ``selection_net``).
        encoder: the network is an encoder (ADIOS): without ``features`` or a classification layer,
            its ``forward`` is the representation; its head's width is not checked.
        sample_shape: one input's shape ``(C, H, W)`` when known: ``image_size`` for builders that take
            it, and the example input that measures an undeclared ``feature_dim``.
        net_args: extra keyword arguments of the builder (a module's ``net_args``).
    """
    data = {"num_classes": num_classes, "in_channels": in_channels,
            "image_size": int(sample_shape[-1]) if sample_shape else None}
    module = resolve(net, data, net_args, argument)
    if not encoder:
        check_head_width(module, num_classes, argument)
    if follows_contract(module):
        return module
    return OwnNet(module, encoder=encoder, sample_shape=sample_shape, argument=argument)


def check_head_width(net: nn.Module, num_classes: int, argument: str) -> None:
    """A classification layer whose last Linear has the wrong number of outputs is refused early."""
    head = getattr(net, "head", None) if isinstance(net, FeatureClassifier) else None
    head = head if head is not None else (getattr(net, find_head(net)) if find_head(net) else None)
    layers = linears(head) if isinstance(head, nn.Module) else []
    if layers and num_classes and layers[-1].out_features != num_classes:
        raise ValueError(f"{argument}: {type(net).__name__}'s classification layer has {layers[-1].out_features} "
                         f"outputs but the data has {num_classes} classes; allowed: a network with "
                         f"{num_classes} outputs (take num_classes in __init__ and the CLI fills it in)")
