"""The denoising objective, shared by backbone pretraining and every method that trains through a UNet.

`noisy_sample` draws the timestep and noise and returns what the UNet sees and what it must predict
(epsilon or velocity, whichever the scheduler's `prediction_type` says); `denoising_loss` is the mean
squared error with optional min-SNR weighting (Hang et al. 2023). Methods use the plain MSE of their
papers (Stable Diffusion's objective); the toy backbone's pretraining uses min-SNR-5 to converge faster.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class NoisySample:
    noisy: torch.Tensor  # x_t
    timesteps: torch.Tensor  # (B,) long
    noise: torch.Tensor  # epsilon
    target: torch.Tensor  # what the UNet must predict


def noisy_sample(scheduler, x0: torch.Tensor, generator: torch.Generator | None = None) -> NoisySample:
    """Forward-diffuse `x0` to a uniformly drawn timestep."""
    noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (len(x0),), device=x0.device,
                              generator=generator)
    noisy = scheduler.add_noise(x0, noise, timesteps)
    kind = scheduler.config.prediction_type
    if kind == "epsilon":
        target = noise
    elif kind == "v_prediction":
        target = scheduler.get_velocity(x0, noise, timesteps)
    else:
        raise ValueError(f"unsupported prediction_type {kind!r} (epsilon or v_prediction)")
    return NoisySample(noisy, timesteps, noise, target)


def denoising_loss(prediction: torch.Tensor, sample: NoisySample, scheduler=None,
                   snr_gamma: float | None = None) -> torch.Tensor:
    """MSE between the UNet's prediction and the target, optionally min-SNR weighted per sample."""
    per_sample = ((prediction.float() - sample.target.float()) ** 2).mean(dim=tuple(range(1, prediction.ndim)))
    if snr_gamma is None:
        return per_sample.mean()
    alphas = scheduler.alphas_cumprod.to(prediction.device)[sample.timesteps]
    snr = alphas / (1 - alphas)
    weight = torch.clamp(snr, max=snr_gamma)
    weight = weight / (snr + 1) if scheduler.config.prediction_type == "v_prediction" else weight / snr
    return (weight * per_sample).mean()
