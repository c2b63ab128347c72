"""NETT, network Tikhonov (Li, Schwab, Antholzer, Haltmeier 2020), in the variant of the comparative study
of learned regularizers (Hertrich, Wong, Denker et al. 2025):

    R(x) = ||Phi(x)||^2  (sum over the pixels)

Phi is a plain CNN trained to return the artifact of its input: for an artifact image x + e (for
denoising, a noisy image, e the noise) Phi gives e, for a clean image x it gives 0. So R is small on
clean images and large on images with artifacts, and its gradient 2 J_Phi^T Phi(x) points along the
artifact Phi detects. Phi is the study's network: `blocks` blocks of two 3x3 convolutions with
CELU(alpha=10) after each (smooth enough for gradient steps: C^1, unlike ReLU), then a 1x1 convolution
to one channel (paper profile: 6 blocks of 64 channels).

Training is the method's own (`fit`, run by the `method_fit` scheme), the study's: each training
patch enters clean or, with probability `artifact_fraction`, with Gaussian noise of std `sigma` (0-255
scale) added, and Phi is fitted to input minus clean patch in squared error plus `l1_weight` times
the absolute error, both summed over the pixels. Adam at `lr`, decayed exponentially to `lr_decay`
times it at the last step. lam is not learned (the study fits it afterwards on five images; here the
calibration does). R being smooth, the schemes of smooth regularizers (bilevel, score) train it too.
"""

from __future__ import annotations

import torch

from regbench.methods.base import Hyper
from regbench.methods.neural import NeuralRegularizer
from regbench.training.loop import TrainingLoop
from regbench.training.schemes.base import seeded_init


def artifact_network(hidden: int = 64, blocks: int = 6, celu_alpha: float = 10.0, padding_mode: str = "zeros"):
    """Phi: `blocks` x (3x3 conv, CELU, 3x3 conv, CELU) at `hidden` channels, then a 1x1 conv to one channel."""
    layers: list[torch.nn.Module] = []
    width = 1
    for _ in range(int(blocks)):
        for _ in range(2):
            layers += [
                torch.nn.Conv2d(width, int(hidden), 3, padding=1, padding_mode=padding_mode),
                torch.nn.CELU(alpha=float(celu_alpha)),
            ]
            width = int(hidden)
    layers.append(torch.nn.Conv2d(width, 1, 1))
    return torch.nn.Sequential(*layers)


class NETT(NeuralRegularizer):
    # lam: the study's starting value for denoising (5); calibrated per task
    hyperparameters = {"lam": Hyper(5.0, span=100.0, calibrate=True, noise_power=1.0)}

    def __init__(
        self,
        hidden: int = 64,
        blocks: int = 6,
        celu_alpha: float = 10.0,
        padding_mode: str = "zeros",
        init_seed: int = 0,
        **hyper: float,
    ):
        super().__init__(**hyper)
        self.net = artifact_network(hidden, blocks, celu_alpha, padding_mode)
        seeded_init(self.net, init_seed)

    def artifact(self, x: torch.Tensor) -> torch.Tensor:
        """Phi(x): the artifact the network finds in x, at x's size."""
        return self.net(x)

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """R(x) = ||Phi(x)||^2 per image, shape (B,)."""
        return self.artifact(x).pow(2).flatten(1).sum(1)

    def fit(self, patches, settings: dict, progress: bool = True) -> dict:
        """The study's NETT training on patches (see the module's docstring); returns the training log."""
        steps, batch, size = int(settings["steps"]), int(settings["batch"]), int(settings["patch"])
        sigma, fraction = float(settings["sigma"]) / 255.0, float(settings["artifact_fraction"])
        l1_weight, seed = float(settings["l1_weight"]), int(settings.get("seed", 0))
        if not settings.get("init"):  # a warm start (train.init) keeps the weights it was given
            seeded_init(self.net, seed)
        opt = torch.optim.Adam(self.net.parameters(), lr=float(settings["lr"]))
        decay = float(settings["lr_decay"]) ** (1.0 / max(steps, 1))
        sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=decay)
        gen = torch.Generator().manual_seed(seed + 1)
        loop = TrainingLoop(
            "nett", steps, opt, sched, settings, progress, show=("loss",), net=self.net, gen=gen, patches=patches
        )

        def step(k: int) -> dict:
            x = patches.sample(batch, size)
            noisy = (torch.rand(batch, 1, 1, 1, generator=gen) < fraction).to(x)
            target = noisy * sigma * torch.randn(x.shape, generator=gen).to(x)  # the artifact; 0 on clean patches
            err = (self.artifact(x + target) - target).flatten(1)
            loss = (err.pow(2).sum(1) + l1_weight * err.abs().sum(1)).mean()
            loss.backward()
            return {"loss": loss.item(), "noisy": float(noisy.mean())}

        self.net.train()
        log = loop.run(step)
        self.net.eval()
        return log
