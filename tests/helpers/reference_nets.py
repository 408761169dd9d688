"""The PyTorch side of the conversion tests: pytorchcv's networks, made
non-trivial (drawn batch-norm terms, a calibrated head) and their probabilities."""

# Converted weights must give the source's class probabilities to this.
CONVERSION_TOLERANCE = 1e-4
CIFAR_STATISTICS = ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))  # imgclsmob's


def randomize_batchnorm(net, seed=0, size=32):
    """Drawn BN affine terms, and running statistics moved away from 0 and 1
    by training-mode passes; then eval mode."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            with torch.no_grad():
                module.weight.uniform_(0.5, 1.5, generator=generator)
                module.bias.uniform_(-0.2, 0.2, generator=generator)
    net.train()
    with torch.no_grad():
        for _ in range(3):
            net(torch.randn(8, 3, size, size, generator=generator) * 1.5 + 0.3)
    return net.eval()


def normalized(images, statistics):
    """(images / 255 - mean) / std, channels first: the source's own input."""
    import torch

    mean, std = (torch.tensor(v)[:, None, None] for v in statistics)
    return (torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255 - mean) / std


def calibrate_head(net, images, statistics):
    """Scales the head so that the logits have a standard deviation of 2: a
    deep random network's logits are huge, and one-hot probabilities would
    hide a wrong mapping."""
    import torch

    head = net.output if hasattr(net, "output") else net.layers["predictions"]
    with torch.no_grad():
        scale = 2.0 / net(normalized(images, statistics)).std()
        head.weight.mul_(scale)
        head.bias.mul_(scale)
    return net


def pytorchcv_probabilities(net, images, statistics):
    """The source's probabilities: its own normalization in."""
    import torch

    with torch.no_grad():
        return torch.softmax(net(normalized(images, statistics)), dim=-1).numpy()
