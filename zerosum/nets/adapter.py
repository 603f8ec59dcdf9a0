"""Your own network under zerosum's network contract.

The contract (what modules, query strategies and callbacks read off a network):

- ``forward(x)`` returns logits ``(B, num_classes)`` (an encoder's forward may return its
  representation instead; see ``encoder`` below);
- ``features(x)`` returns the representation ``(B, d)`` (penultimate layer): core-set, SRAL's state,
  the kNN monitor, the online probe and ADIOS's objective read it;
- ``feature_dim`` is ``d`` (ADIOS sizes its projector with it, SRAL its agent).

A network that already has a ``features`` method and an integer ``feature_dim`` (every zerosum net,
any :class:`~zerosum.nets.FeatureClassifier`) is used as it is. Any other ``nn.Module`` is wrapped by
:class:`OwnNet`, which fills in what is missing:

- ``features``: the network's own ``features`` method if it has one; otherwise the input of its
  classification layer, found as the attribute ``fc``, ``head`` or ``classifier`` (torchvision's
  names; a forward hook reads the input, the network's own forward is run unchanged); otherwise, for
  an ``encoder`` (ADIOS), ``forward`` itself. Without any of these, calling ``features`` raises an
  error that names what to add.
- ``feature_dim``: the declared one; otherwise measured once, on first use, by running ``features``
  on an example input in eval mode without gradients (the input's shape comes from the first layer:
  ``Conv2d(c, ...)`` -> ``(2, c, S, S)`` with ``S`` the data's image size, or 32; ``Linear(n, ...)``
  -> ``(2, n)``); otherwise the ``in_features`` of the classification layer.

A ``torch.nn.Module`` attribute called ``features`` (torchvision's VGG, MobileNet, DenseNet keep
their convolutional trunk there) is not the contract's method: such nets are split at their
``classifier`` instead.
"""

from __future__ import annotations

import inspect
from typing import Optional, Sequence

import torch
from torch import nn

#: attribute names of a classification layer that ``features`` may split off (torchvision's names)
HEAD_NAMES = ("fc", "head", "classifier")

CONTRACT = ("a network whose features(x) returns (batch, d) and whose feature_dim is d, or one with a "
            f"classification layer named {' / '.join(HEAD_NAMES)} to split off")


def has_features_method(net: nn.Module) -> bool:
    """True when ``net.features`` is a method (not a submodule such as torchvision's VGG trunk)."""
    attr = getattr(type(net), "features", None)
    return attr is not None and (inspect.isfunction(attr) or isinstance(attr, property)) and callable(
        getattr(net, "features", None))


def follows_contract(net: nn.Module) -> bool:
    """``features`` method and an integer ``feature_dim``: used as it is."""
    try:
        dim = getattr(net, "feature_dim", None)
    except AttributeError:
        dim = None
    return has_features_method(net) and isinstance(dim, int) and not isinstance(dim, bool)


def find_head(net: nn.Module) -> Optional[str]:
    """Name of the classification layer (``fc``, ``head``, ``classifier``) if ``net`` has one."""
    for name in HEAD_NAMES:
        if isinstance(getattr(net, name, None), nn.Module):
            return name
    return None


def linears(module: nn.Module) -> list[nn.Linear]:
    return [m for m in module.modules() if isinstance(m, nn.Linear)]


def example_input(net: nn.Module, sample_shape: Optional[Sequence[int]]) -> torch.Tensor:
    """A batch of 2 inputs shaped for ``net``'s first layer (see the module docstring)."""
    param = next(net.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    for m in net.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            dims = {nn.Conv1d: 1, nn.Conv2d: 2, nn.Conv3d: 3}[type(m)]
            size = int(sample_shape[-1]) if sample_shape else 32
            return torch.randn(2, m.in_channels, *([size] * dims), device=device, dtype=dtype)
        if isinstance(m, nn.Linear):
            return torch.randn(2, m.in_features, device=device, dtype=dtype)
    if sample_shape:
        return torch.randn(2, *sample_shape, device=device, dtype=dtype)
    raise ValueError("no Conv or Linear layer to read the input shape from")


@torch.no_grad()
def measure_feature_dim(net: nn.Module, features, sample_shape: Optional[Sequence[int]]) -> int:
    """``features(x).shape[1]`` on an example input, in eval mode (train flags restored)."""
    flags = [(m, m.training) for m in net.modules()]
    net.eval()
    try:
        x = example_input(net, sample_shape)
        with torch.inference_mode(False):
            h = features(x)
    finally:
        for m, flag in flags:
            m.training = flag
    if not isinstance(h, torch.Tensor) or h.dim() != 2:
        shape = tuple(h.shape) if isinstance(h, torch.Tensor) else type(h).__name__
        raise ValueError(f"features(x) returned {shape} for an input of shape {tuple(x.shape)}; "
                         "it must return (batch, d)")
    return int(h.shape[1])


class OwnNet(nn.Module):
    """A network that does not follow the contract by itself, completed as the module docstring says.

    ``forward`` is the network's own; ``features``, ``feature_dim`` and ``head`` are added. The
    wrapped network is :attr:`net` (its state-dict keys gain the prefix ``net.``).

    Args:
        net: the network.
        encoder: without ``features`` and a classification layer, ``forward`` is the representation.
        sample_shape: shape of one input ``(C, H, W)`` when known (for measuring ``feature_dim``).
        argument: the option name used in error messages (``net``, ``selection_net``).
    """

    def __init__(self, net: nn.Module, encoder: bool = False, sample_shape: Optional[Sequence[int]] = None,
                 argument: str = "net"):
        super().__init__()
        self.net = net
        self.argument = argument
        self.sample_shape = tuple(sample_shape) if sample_shape else None
        self.head_name = find_head(net)
        self.source = ("method" if has_features_method(net) else "head" if self.head_name
                       else "forward" if encoder else None)
        declared = getattr(net, "feature_dim", None)
        self._feature_dim: Optional[int] = declared if isinstance(declared, int) else None

    @property
    def name(self) -> str:
        return type(self.net).__name__

    def forward(self, *args, **kwargs):
        return self.net(*args, **kwargs)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if self.source == "method":
            return self.net.features(x)
        if self.source == "forward":
            return self.net(x)
        if self.source == "head":
            return self._head_input(x)
        raise TypeError(self._missing_features())

    def _missing_features(self) -> str:
        return (f"{self.argument}: {self.name} has no features(x) and no classification layer named "
                f"{' / '.join(HEAD_NAMES)} to split it off; allowed: {CONTRACT}")

    def _head_input(self, x: torch.Tensor) -> torch.Tensor:
        seen: list[torch.Tensor] = []
        hook = self.head.register_forward_pre_hook(lambda module, inputs: seen.append(inputs[0]))
        try:
            self.net(x)
        finally:
            hook.remove()
        if not seen:
            raise RuntimeError(f"{self.argument}: {self.name}.forward never called its {self.head_name!r} layer, "
                               "so features(x) (its input) is unknown; define features(x) on the network")
        h = seen[-1]
        return h.flatten(1) if h.dim() > 2 else h

    @property
    def head(self) -> nn.Module:
        if self.head_name is None:
            raise AttributeError(f"{self.argument}: {self.name} has no classification layer named "
                                 f"{' / '.join(HEAD_NAMES)}")
        return getattr(self.net, self.head_name)

    @property
    def feature_dim(self) -> int:
        if self._feature_dim is None:
            self._feature_dim = self._infer_feature_dim()
        return self._feature_dim

    def _infer_feature_dim(self) -> int:
        if self.source is None:
            raise TypeError(self._missing_features())
        try:
            return measure_feature_dim(self.net, self.features, self.sample_shape)
        except Exception as err:  # noqa: BLE001 - any failure of the user's forward ends up in the message
            layers = linears(self.head) if self.head_name else []
            if layers:
                return layers[0].in_features
            raise ValueError(
                f"{self.argument}: cannot infer the feature size of {self.name} ({type(err).__name__}: {err}); "
                f"declare it as an integer attribute feature_dim on the network; allowed: {CONTRACT}") from err
