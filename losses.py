"""The VAE objectives: reconstruction, the three KL terms, and their beta-weighted sum.

Every function returns one value per image ([B]); `vae_loss` averages over the batch.
"""
import math

import torch


def reconstruction_loss(x_hat, x):
    """||x - x_hat||^2 summed over pixels, per image.

    Squared error is a Gaussian log-likelihood with fixed variance, up to constants
    (Kingma & Welling 2014, Auto-Encoding Variational Bayes, Appendix C.2).
    """
    return (x_hat - x).pow(2).flatten(1).sum(1)


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


def vae_loss(x, x_hat, mu, logvar, prior, beta, kl_mask=None):
    """Negative ELBO with a beta-weighted KL (Higgins et al. 2017): recon + beta * KL(q(z|x) || prior).

    kl_mask (optional, bool [B]): see labelled_only_kl. Returns (total, recon, kl), each averaged over the batch.
    """
    recon = reconstruction_loss(x_hat, x).mean()
    kl = kl_term(prior, mu, logvar, kl_mask).mean()
    return recon + beta * kl, recon, kl
