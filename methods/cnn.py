"""An unconstrained CNN regularizer: the local adversarial regularizer (LAR) of the comparative study of
learned regularizers (Hertrich, Wong, Denker et al. 2025), after adversarial regularization (Lunz, Oektem,
Schoenlieb 2018) and its patch-based variant (Prost, Houdard, Almansa, Papadakis 2021).

    R(x) = sum over the pixels p of  c(P_p x) - c(0)

c is a critic of one 15x15 patch: seven unpadded 3x3 convolutions with SiLU between them (the study's
widths 128-64-64-64-32-32 in the paper profile), so it maps an image to one value per 15x15 window.
P_p x is the window centred at p of x padded by reflection (7 pixels): every pixel centres one window.

Why a sum: lam then does not depend on the image's size, so a calibration on crops holds on whole
images (a mean over the windows, as the study's adversarial LAR takes, would break that). Why padded
in training too: the study trains the critic on bare 15x15 patches and pads only to reconstruct; here R
is one function, so every scheme trains the R the solver minimizes. Why c(0): subtracting the critic's
value on a zero window changes neither the gradient nor any training loss (they see differences of R
or its gradient) but keeps R near zero, so the solver's line search compares energies without the
rounding of a large offset. Why SiLU: R is smooth (ReLU would make grad R jump).

R has no convexity or Lipschitz bound: the shared solver line-searches (NeuralRegularizer). It is
trained by the `adversarial_local` scheme (the study's LAR: a Wasserstein critic on 15x15 patches) or
`adversarial`, and as any smooth regularizer by `bilevel_jfb`, `bilevel_ift` and `score`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from regbench.methods.neural import NeuralRegularizer
from regbench.training.schemes.base import seeded_init

PAPER_CHANNELS = (1, 128, 64, 64, 64, 32, 32, 1)


class PatchCritic(torch.nn.Module):
    """Unpadded 3x3 convolutions, SiLU between them: one value per (2 * layers + 1)^2 window. The last
    convolution has no bias: a constant added to c cancels in R."""

    def __init__(self, channels=PAPER_CHANNELS):
        super().__init__()
        channels = tuple(int(c) for c in channels)
        if len(channels) < 2 or channels[-1] != 1:
            raise ValueError(f"critic channels must run from the image's channels to 1, got {channels}")
        layers: list[torch.nn.Module] = []
        for i, (c_in, c_out) in enumerate(zip(channels[:-1], channels[1:])):
            last = i == len(channels) - 2
            layers.append(torch.nn.Conv2d(c_in, c_out, 3, bias=not last))
            if not last:
                layers.append(torch.nn.SiLU())
        self.net = torch.nn.Sequential(*layers)
        self.in_channels = channels[0]
        self.field = 2 * (len(channels) - 1) + 1  # the receptive field's side

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class CNN(NeuralRegularizer):
    def __init__(self, channels=PAPER_CHANNELS, pad: int | None = None, init_seed: int = 0, **hyper: float):
        """`pad`: reflection padding on each side (default: half the receptive field, so every pixel
        centres one window)."""
        super().__init__(**hyper)
        self.critic = PatchCritic(channels)
        seeded_init(self.critic, init_seed)
        self.pad = self.critic.field // 2 if pad is None else int(pad)

    def windows(self, x: torch.Tensor) -> torch.Tensor:
        """c(P_p x) - c(0) for every window: (B, 1, H + 2 pad - field + 1, W + 2 pad - field + 1)."""
        if self.pad:
            small = self.pad >= min(x.shape[-2:])  # reflection needs the image larger than the padding
            x = F.pad(x, (self.pad,) * 4, mode="replicate" if small else "reflect")
        field = self.critic.field
        zero = torch.zeros(1, self.critic.in_channels, field, field, dtype=x.dtype, device=x.device)
        return self.critic(x) - self.critic(zero)

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """R(x) per image, shape (B,)."""
        return self.windows(x).flatten(1).sum(1)
