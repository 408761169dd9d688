"""An independent plain-PyTorch PyramidNet, written after the official PyTorch code.

The benchmarks' yardstick (`speed.py`), and the tests' check that weights
ported from PyTorch give the same logits (so the yardstick computes exactly
our network, no regularizer): the official code pads strided convs by 1 pixel on every
side, pools the
shortcut with `AvgPool2d(2, 2, ceil_mode=True)` and appends zero channels.
Modules are keyed by the Keras layer names so that weights copy by name.
`variant="imagenet"` has the official ImageNet stem (7x7/2 conv to 64, BN,
ReLU, 3x3/2 max-pool padded with -inf) and the given units per stage.
"""

import numpy as np
import torch
from torch import nn
from torch.nn import functional


def _bn(channels):
    return nn.BatchNorm2d(channels, momentum=0.1, eps=1e-5)


class TorchPyramidNet(nn.Module):
    def __init__(self, widths, bottleneck, classes, variant="cifar", stages=None):
        super().__init__()
        self.bottleneck, self.variant = bottleneck, variant
        self.plan = []  # (name, in_channels, out_channels, stride)
        if variant == "cifar":
            channels = 16
            layers = {"stem_conv": nn.Conv2d(3, 16, 3, 1, 1, bias=False), "stem_bn": _bn(16)}
        else:
            channels = 64
            layers = {"stem_conv": nn.Conv2d(3, 64, 7, 2, 3, bias=False), "stem_bn": _bn(64)}
        stages = stages or [len(widths) // 3] * 3
        positions = [(stage, unit) for stage, count in enumerate(stages) for unit in range(count)]
        for width, (stage, unit) in zip(widths, positions):
            name = f"stage{stage + 1}_unit{unit + 1}"
            stride = 2 if stage > 0 and unit == 0 else 1
            out = 4 * width if bottleneck else width
            layers[f"{name}_bn1"] = _bn(channels)
            if bottleneck:
                layers[f"{name}_conv1"] = nn.Conv2d(channels, width, 1, bias=False)
                layers[f"{name}_bn2"] = _bn(width)
                layers[f"{name}_conv2"] = nn.Conv2d(width, width, 3, stride, 1, bias=False)
                layers[f"{name}_bn3"] = _bn(width)
                layers[f"{name}_conv3"] = nn.Conv2d(width, out, 1, bias=False)
                layers[f"{name}_bn4"] = _bn(out)
            else:
                layers[f"{name}_conv1"] = nn.Conv2d(channels, width, 3, stride, 1, bias=False)
                layers[f"{name}_bn2"] = _bn(width)
                layers[f"{name}_conv2"] = nn.Conv2d(width, width, 3, 1, 1, bias=False)
                layers[f"{name}_bn3"] = _bn(width)
            self.plan.append((name, channels, out, stride))
            channels = out
        layers["head_bn"] = _bn(channels)
        layers["predictions"] = nn.Linear(channels, classes)
        self.layers = nn.ModuleDict(layers)

    def _branch(self, name, x):
        m = self.layers
        x = m[f"{name}_bn1"](x)
        if self.bottleneck:
            x = functional.relu(m[f"{name}_bn2"](m[f"{name}_conv1"](x)))
            x = functional.relu(m[f"{name}_bn3"](m[f"{name}_conv2"](x)))
            return m[f"{name}_bn4"](m[f"{name}_conv3"](x))
        x = functional.relu(m[f"{name}_bn2"](m[f"{name}_conv1"](x)))
        return m[f"{name}_bn3"](m[f"{name}_conv2"](x))

    def forward(self, x):
        x = self.layers["stem_bn"](self.layers["stem_conv"](x))
        if self.variant == "imagenet":
            x = functional.max_pool2d(functional.relu(x), 3, 2, 1)
        for name, in_channels, out_channels, stride in self.plan:
            branch = self._branch(name, x)
            shortcut = functional.avg_pool2d(x, 2, 2, ceil_mode=True) if stride == 2 else x
            if out_channels > in_channels:
                zeros = shortcut.new_zeros(
                    shortcut.shape[0], out_channels - in_channels, *shortcut.shape[2:]
                )
                shortcut = torch.cat([shortcut, zeros], dim=1)
            x = branch + shortcut
        x = functional.relu(self.layers["head_bn"](x))
        return self.layers["predictions"](x.mean(dim=(2, 3)))

    def load_from_keras(self, model):
        """Copies a Keras PyramidNet's weights (channels_last layout) by layer name."""
        with torch.no_grad():
            for name, module in self.layers.items():
                weights = [np.asarray(w) for w in model.get_layer(name).get_weights()]
                if isinstance(module, nn.Conv2d):
                    module.weight.copy_(torch.from_numpy(weights[0].transpose(3, 2, 0, 1)))
                elif isinstance(module, nn.BatchNorm2d):
                    gamma, beta, mean, variance = weights
                    for target, value in zip(
                        (module.weight, module.bias, module.running_mean, module.running_var),
                        (gamma, beta, mean, variance),
                    ):
                        target.copy_(torch.from_numpy(value))
                else:
                    module.weight.copy_(torch.from_numpy(weights[0].T))
                    module.bias.copy_(torch.from_numpy(weights[1]))
