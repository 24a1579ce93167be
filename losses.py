"""The VAE objectives: reconstruction, the three KL terms, and their beta-weighted sum.

Every function returns one value per image ([B]); `vae_loss` averages over the batch.
"""
import contextlib
import math
import random

import numpy as np
import torch
import torch.nn as nn

CALIBRATED_MIN_VARIANCE = 1e-6  # floor on the calibrated decoder's sigma^2: only a guard against log(0) (below Rybkin et al.'s log sigma >= -6)


def reconstruction_loss(logits, x, likelihood):
    """-log p(x|z) per image, up to a constant, from the decoder's logits (the image is their sigmoid).

    gaussian:  ||x - sigmoid(logits)||^2 summed over pixels: a Gaussian log-likelihood with fixed variance, up to
               constants (Kingma & Welling 2014, Auto-Encoding Variational Bayes, Appendix C.2); the seed design.
    bernoulli: the binary cross-entropy summed over pixels, -sum x log p + (1 - x) log(1 - p), p = sigmoid(logits)
               (Kingma & Welling 2014, Appendix C.1), evaluated on grey levels in [0, 1] as is usual for MNIST.
    calibrated-gaussian: -log N(x | sigmoid(logits), sigma^2 I), every constant kept, with one sigma shared by the
               pixels and images of the batch and set to its maximum-likelihood value, the batch's mean squared
               error per pixel (the "optimal sigma" of Rybkin, Daniilidis & Levine 2021, Simple and Effective VAE
               Training with Calibrated Decoders): the fixed variance of `gaussian` weighs the reconstruction
               against the KL by an arbitrary constant, which is what blurs. An image's value depends on the
               set it is scored with, whose sigma it shares: the training batch here, the whole set in
               per_image_terms (the validation loss, the test split).
    """
    if likelihood == "bernoulli":
        return nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)
    squared_error = (torch.sigmoid(logits) - x).pow(2).flatten(1).sum(1)
    if likelihood == "gaussian":
        return squared_error
    if likelihood == "calibrated-gaussian":
        return calibrated_gaussian_nll(squared_error, x[0].numel())
    raise ValueError(f"unknown likelihood {likelihood!r}")


def calibrated_gaussian_nll(squared_error, pixels):
    """-log N(x | m, sigma^2 I) per image from its summed squared error ||x - m||^2 over `pixels` pixels, sigma^2
    the maximum-likelihood value over these images (their mean squared error per pixel), held constant in the
    gradient (its own derivative term cancels at the maximum, so the gradient is the same as with it)."""
    variance = (squared_error.mean() / pixels).detach().clamp_min(CALIBRATED_MIN_VARIANCE)
    # -log N(x | m, s^2 I) = D/2 log(2 pi s^2) + ||x - m||^2 / (2 s^2) (Bishop 2006, eq. 2.43, isotropic)
    return 0.5 * pixels * torch.log(2 * math.pi * variance) + squared_error / (2 * variance)


def kl_standard_normal(mu, logvar):
    """KL(N(mu, diag sigma^2) || N(0, I)) in closed form."""
    # -1/2 sum_j (1 + log sigma_j^2 - mu_j^2 - sigma_j^2): Kingma & Welling 2014, Appendix B
    return -0.5 * (1.0 + logvar - mu.pow(2) - logvar.exp()).sum(1)


def kl_diagonal_gaussian(mu, logvar, prior_mean, prior_var):
    """KL(N(mu, diag sigma^2) || N(mu_p, diag sigma_p^2)) in closed form."""
    # 1/2 sum_j (sigma^2/sigma_p^2 + (mu - mu_p)^2/sigma_p^2 - 1 - log sigma^2 + log sigma_p^2):
    # closed-form KL of two Gaussians (diagonal case); Kingma & Welling 2014, Appendix B, is its N(0, I) special case
    return 0.5 * (logvar.exp() / prior_var + (mu - prior_mean).pow(2) / prior_var
                  - 1.0 - logvar + prior_var.log()).sum(1)


def gaussian_log_prob(z, mu, logvar):
    """log N(z | mu, diag exp(logvar)), summed over the last dimension; z may carry leading sample dims."""
    # the diagonal Gaussian log-density, -1/2 sum_j (log 2 pi + log s_j^2 + (z_j - m_j)^2 / s_j^2) (Bishop 2006,
    # eq. 2.43, with a diagonal covariance)
    return -0.5 * (math.log(2 * math.pi) + logvar + (z - mu).pow(2) / logvar.exp()).sum(-1)


def kl_monte_carlo(mu, logvar, prior_log_prob, n_samples=1):
    """E_q(z|x)[log q(z|x) - log p(z)], estimated over n_samples reparameterised draws z ~ q(z|x).

    Unbiased for any prior with a log density (here the Gaussian mixture) and differentiable in mu and
    logvar through z = mu + sigma * eps: the KL part of the SGVB estimator A, Kingma & Welling 2014, eq. (6).
    """
    eps = torch.randn((n_samples,) + mu.shape, dtype=mu.dtype, device=mu.device)
    z = mu + eps * (0.5 * logvar).exp()  # reparameterisation trick: Kingma & Welling 2014, Sec. 2.4
    log_q = gaussian_log_prob(z, mu, logvar)  # [S, B]
    log_p = prior_log_prob(z.flatten(0, 1)).view(n_samples, -1)  # [S, B]
    return (log_q - log_p).mean(0)


def labelled_only_kl(prior, mu, logvar, kl_mask):
    """Per image: KL to `prior` where kl_mask is True (the expert-labelled goal images), KL to N(0, I) elsewhere.

    The bias-keeping variant of this project: only the labelled images are pulled into the goal prior's
    region, so the other digits keep the base VAE's layout and the region keeps decoding to goal digits.
    """
    return torch.where(kl_mask, prior.kl(mu, logvar), kl_standard_normal(mu, logvar))


def kl_term(prior, mu, logvar, kl_mask=None):
    """The objective's KL per image: to `prior`, or with kl_mask (bool [B]) the labelled-only variant."""
    return prior.kl(mu, logvar) if kl_mask is None else labelled_only_kl(prior, mu, logvar, kl_mask)


def vae_loss(x, logits, mu, logvar, prior, beta, kl_mask, likelihood):
    """Negative ELBO with a beta-weighted KL (Higgins et al. 2017): recon + beta * KL(q(z|x) || prior).

    logits: the decoder's output for x; kl_mask (None, or bool [B]): see labelled_only_kl; likelihood: the model's
    (reconstruction_loss), never a default that could differ from it. Returns (total, recon, kl), each averaged over
    the batch.
    """
    recon = reconstruction_loss(logits, x, likelihood).mean()
    kl = kl_term(prior, mu, logvar, kl_mask).mean()
    return recon + beta * kl, recon, kl


@contextlib.contextmanager
def forked_rng(device):
    """Draws inside do not disturb the caller's random streams: torch's (CPU and, when used, the CUDA device),
    NumPy's and Python's global generators (fitting.fit reseeds all three)."""
    python_state, numpy_state = random.getstate(), np.random.get_state()
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)


@torch.inference_mode()
def per_image_terms(model, prior, images, seed, batch_size=1000, labels=None, kl_mask=None):
    """(recon [N], kl [N]) of the model's objective for each image, with fixed noise: the reparameterised z and
    the GMM's Monte Carlo KL are random, and epochs (and models) should be compared like with like.

    labels: fed to a ConditionalVAE; kl_mask: the labelled-only-KL variant (labelled_only_kl)."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    # the calibrated decoder's sigma is the maximum-likelihood one of the whole set, so that no image's value
    # depends on which chunk it was scored in: summed squared errors first, -log p(x|z) at the end
    calibrated = model.likelihood == "calibrated-gaussian"
    recon, kl = [], []
    with forked_rng(device):
        torch.manual_seed(seed)
        for i in range(0, len(images), batch_size):
            x = images[i:i + batch_size].to(device)
            logits, mu, logvar = model(x) if labels is None else model(x, labels[i:i + batch_size].to(device))
            recon.append(reconstruction_loss(logits, x, "gaussian" if calibrated else model.likelihood).double())
            mask = None if kl_mask is None else kl_mask[i:i + batch_size].to(device)
            kl.append(kl_term(prior, mu, logvar, mask))
    model.train(was_training)
    recon = torch.cat(recon).cpu()
    if calibrated:
        recon = calibrated_gaussian_nll(recon, images[0].numel())
    return recon, torch.cat(kl).double().cpu()


def objective(model, prior, images, beta, seed, labels=None, kl_mask=None):
    """Mean loss = recon + beta * kl, with its two parts, on `images` (see per_image_terms)."""
    recon, kl = (t.mean().item() for t in per_image_terms(model, prior, images, seed, labels=labels, kl_mask=kl_mask))
    return {"loss": recon + beta * kl, "recon": recon, "kl": kl}
