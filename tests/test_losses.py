"""Each KL term against torch.distributions, and the reconstruction term against its definition."""
import pytest
import torch
from torch.distributions import Bernoulli, Independent, Normal, kl_divergence

import losses
from models import LIKELIHOODS, DiagonalGaussianPrior, GaussianMixturePrior, StandardNormalPrior


def posterior(batch=64, dim=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, dim, generator=g) * 1.5, torch.randn(batch, dim, generator=g)


def diag_normal(mu, var):
    return Independent(Normal(mu, var.sqrt()), 1)


def test_gaussian_reconstruction_is_pixel_sum_of_squares_of_the_image_per_image():
    x, logits = torch.rand(5, 1, 28, 28), torch.randn(5, 1, 28, 28) * 3
    expected = torch.stack([((a - torch.sigmoid(b)) ** 2).sum() for a, b in zip(x, logits)])
    torch.testing.assert_close(losses.reconstruction_loss(logits, x, "gaussian"), expected)


def test_bernoulli_reconstruction_is_the_negative_log_likelihood_per_image():
    """-sum x log p + (1 - x) log(1 - p), p = sigmoid(logits), written out in float64; on binary images it is
    torch.distributions.Bernoulli's negative log-probability, and large logits stay finite (the logits path)."""
    x, logits = torch.rand(5, 1, 28, 28), torch.randn(5, 1, 28, 28) * 3
    p = torch.sigmoid(logits.double())
    expected = -(x.double() * p.log() + (1 - x.double()) * (1 - p).log()).flatten(1).sum(1)
    torch.testing.assert_close(losses.reconstruction_loss(logits, x, "bernoulli").double(), expected, rtol=1e-5,
                               atol=1e-3)
    binary = (x > 0.5).float()
    reference = -Bernoulli(logits=logits).log_prob(binary).flatten(1).sum(1)
    torch.testing.assert_close(losses.reconstruction_loss(logits, binary, "bernoulli"), reference)
    extreme = losses.reconstruction_loss(torch.full((1, 1, 28, 28), 80.0), torch.zeros(1, 1, 28, 28), "bernoulli")
    assert extreme.item() == pytest.approx(80.0 * 784, rel=1e-4)  # log(1 + e^80) per pixel, not inf


def test_calibrated_gaussian_is_the_normal_negative_log_likelihood_at_the_batch_maximum_likelihood_sigma():
    """torch.distributions.Normal's -log p(x | sigmoid(logits), sigma^2) with sigma^2 the batch's mean squared error
    per pixel; that sigma is the maximum of the batch's likelihood (any other sigma gives a larger loss), and the
    gradient is the one of the loss with sigma left in the graph (Rybkin et al. 2021's optimal sigma)."""
    x, logits = torch.rand(6, 1, 28, 28), torch.randn(6, 1, 28, 28) * 2
    mean = torch.sigmoid(logits)
    sigma = (mean - x).pow(2).mean().sqrt()
    expected = -Normal(mean, sigma).log_prob(x).flatten(1).sum(1)
    loss = losses.reconstruction_loss(logits, x, "calibrated-gaussian")
    torch.testing.assert_close(loss, expected)
    for factor in (0.8, 0.95, 1.05, 1.25):
        assert -Normal(mean, sigma * factor).log_prob(x).sum() > loss.sum()
    logits.requires_grad_(True)
    losses.reconstruction_loss(logits, x, "calibrated-gaussian").mean().backward()
    held = logits.grad.clone()
    logits.grad = None
    live_mean = torch.sigmoid(logits)
    live_sigma = (live_mean - x).pow(2).mean().sqrt()
    (-Normal(live_mean, live_sigma).log_prob(x).flatten(1).sum(1)).mean().backward()
    torch.testing.assert_close(held, logits.grad)
    # sigma is held constant: one image's value moves with its own logits only (a live sigma would move it with all)
    logits.grad = None
    own = torch.autograd.grad(losses.reconstruction_loss(logits, x, "calibrated-gaussian")[0], logits)[0]
    assert own[0].abs().sum() > 0 and (own[1:] == 0).all()
    # a perfect reconstruction hits the variance floor, not log(0)
    perfect = losses.reconstruction_loss(logits.detach(), torch.sigmoid(logits.detach()), "calibrated-gaussian")
    floor = 0.5 * 784 * torch.log(torch.tensor(2 * torch.pi * losses.CALIBRATED_MIN_VARIANCE))
    torch.testing.assert_close(perfect, floor.expand(6))


def test_a_scored_set_shares_one_calibrated_sigma_whatever_its_chunks():
    """per_image_terms scores a set with the calibrated decoder's maximum-likelihood sigma of the whole set: each
    image's value is Normal's -log p at that sigma, the same in chunks of 3 as in one chunk (per-chunk sigmas
    would differ: the images' errors are unequal)."""
    class Fixed(torch.nn.Module):
        likelihood = "calibrated-gaussian"

        def __init__(self):
            super().__init__()
            self.scale = torch.nn.Parameter(torch.tensor(1.5))

        def forward(self, x):
            return self.scale * torch.logit(x.clamp(0.05, 0.95)).flip(-1), torch.zeros(len(x), 2), torch.zeros(len(x), 2)

    model, x = Fixed(), torch.rand(8, 1, 28, 28)
    x[:4] = x[:4].round()  # unequal errors across the chunks
    mean = torch.sigmoid(model(x)[0]).detach()
    sigma = (mean - x).pow(2).mean().sqrt()
    expected = -Normal(mean.double(), sigma.double()).log_prob(x.double()).flatten(1).sum(1)
    whole = losses.per_image_terms(model, StandardNormalPrior(2), x, 0, batch_size=1000)[0]
    chunked = losses.per_image_terms(model, StandardNormalPrior(2), x, 0, batch_size=3)[0]
    torch.testing.assert_close(whole, expected, rtol=1e-6, atol=0)  # float32 squared errors
    torch.testing.assert_close(chunked, expected, rtol=1e-6, atol=0)


def test_the_plateau_schedule_halves_the_rate_when_a_negative_loss_stops_falling():
    """ReduceLROnPlateau's default threshold is relative to the best loss: below zero it counts a slightly worse
    epoch (-499.999 after -500) as an improvement and never halves; the absolute threshold does halve."""
    import fitting
    optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler, per_batch = fitting.make_schedule(optimizer, "plateau", 1.0, 0.1, 10, lr_patience=1)
    assert not per_batch
    for loss in (-500.0, -499.999, -499.999):
        scheduler.step(loss)
    assert optimizer.param_groups[0]["lr"] == 0.5
    # a fall of more than the threshold is an improvement: no halving (a zero or huge threshold fails one of these)
    for loss in (-500.02, -500.04):
        scheduler.step(loss)
    assert optimizer.param_groups[0]["lr"] == 0.5
    scheduler.step(-500.045)
    scheduler.step(-500.045)
    assert optimizer.param_groups[0]["lr"] == 0.25


def test_an_unknown_likelihood_is_an_error():
    with pytest.raises(ValueError, match="unknown likelihood"):
        losses.reconstruction_loss(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2), "laplace")


def test_standard_normal_kl_matches_torch_distributions():
    mu, logvar = posterior()
    expected = kl_divergence(diag_normal(mu, logvar.exp()), diag_normal(torch.zeros(4), torch.ones(4)))
    torch.testing.assert_close(losses.kl_standard_normal(mu, logvar), expected)
    torch.testing.assert_close(StandardNormalPrior(4).kl(mu, logvar), expected)


def test_diagonal_gaussian_kl_matches_torch_distributions():
    mu, logvar = posterior()
    prior_mean, prior_var = torch.tensor([0.5, -1.0, 2.0, 0.0]), torch.tensor([0.3, 2.0, 0.7, 1.0])
    expected = kl_divergence(diag_normal(mu, logvar.exp()), diag_normal(prior_mean, prior_var))
    torch.testing.assert_close(losses.kl_diagonal_gaussian(mu, logvar, prior_mean, prior_var), expected)
    torch.testing.assert_close(DiagonalGaussianPrior(prior_mean, prior_var).kl(mu, logvar), expected)


def test_diagonal_gaussian_kl_is_zero_at_the_prior():
    mean, var = torch.tensor([0.5, -1.0]), torch.tensor([0.3, 2.0])
    kl = losses.kl_diagonal_gaussian(mean[None], var.log()[None], mean, var)
    torch.testing.assert_close(kl, torch.zeros(1), atol=1e-6, rtol=0)


def test_gaussian_log_prob_matches_torch_distributions():
    mu, logvar = posterior(8)
    z = torch.randn(3, 8, 4)
    expected = diag_normal(mu, logvar.exp()).log_prob(z)
    torch.testing.assert_close(losses.gaussian_log_prob(z, mu, logvar), expected)


def test_monte_carlo_kl_equals_closed_form_in_expectation_for_a_gaussian_prior():
    """With a prior whose KL is known, the MC estimate must converge to it."""
    mu, logvar = posterior(16, 3)
    prior = StandardNormalPrior(3)
    torch.manual_seed(1)
    estimate = losses.kl_monte_carlo(mu, logvar, prior.log_prob, n_samples=20000)
    torch.testing.assert_close(estimate, losses.kl_standard_normal(mu, logvar), atol=0.15, rtol=0.02)


def gmm_prior(seed=0, dim=3, k=4):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(k, dim, dim, generator=g) * 0.4
    return GaussianMixturePrior(torch.softmax(torch.randn(k, generator=g), 0), torch.randn(k, dim, generator=g) * 2,
                                a @ a.transpose(1, 2) + 0.2 * torch.eye(dim), kl_samples=1)


def test_gmm_log_prob_matches_a_hand_sum_over_components():
    prior = gmm_prior()
    z = torch.randn(50, 3)
    from torch.distributions import MultivariateNormal
    per_component = torch.stack([MultivariateNormal(m, c).log_prob(z) + w.log()
                                 for w, m, c in zip(prior.weights, prior.means, prior.covariances)])
    torch.testing.assert_close(prior.log_prob(z), per_component.logsumexp(0), atol=1e-4, rtol=1e-5)


def test_gmm_monte_carlo_kl_matches_numerical_integration_in_one_dimension():
    """E_q[log q - log p] for a 1-D mixture prior, against a quadrature of the same integral: an estimator that
    dropped the log q term, used the wrong sign or evaluated at the mean only would miss it by far more than the
    tolerance."""
    prior = GaussianMixturePrior(torch.tensor([0.3, 0.7]), torch.tensor([[-2.0], [1.5]]),
                                 torch.tensor([[[0.5]], [[0.8]]]), kl_samples=1)
    mu, logvar = torch.tensor([[0.4], [-1.0], [2.5]]), torch.tensor([[-0.5], [0.3], [-2.0]])
    z = torch.linspace(-15, 15, 300001, dtype=torch.float64)
    log_p = torch.logsumexp(torch.stack([w.double().log() + Normal(m.double(), c.double().sqrt()).log_prob(z)
                                         for w, m, c in zip(prior.weights, prior.means[:, 0], prior.covariances[:, 0, 0])]), 0)
    expected = []
    for m, lv in zip(mu[:, 0].double(), logvar[:, 0].double()):
        log_q = Normal(m, (0.5 * lv).exp()).log_prob(z)
        expected.append(torch.trapezoid(log_q.exp() * (log_q - log_p), z))
    torch.manual_seed(2)
    estimate = losses.kl_monte_carlo(mu, logvar, prior.log_prob, n_samples=400000)
    torch.testing.assert_close(estimate.double(), torch.stack(expected), atol=0.01, rtol=0.01)


def test_gmm_monte_carlo_kl_matches_an_independent_torch_distributions_estimate():
    """Against a mixture built directly from torch.distributions (not through our prior class) and its own
    samples: same expectation, different code path."""
    from torch.distributions import Categorical, MixtureSameFamily, MultivariateNormal
    prior = gmm_prior()
    reference_prior = MixtureSameFamily(Categorical(probs=prior.weights.double()),
                                        MultivariateNormal(prior.means.double(), prior.covariances.double()))
    mu, logvar = posterior(6, 3)
    q = Independent(Normal(mu.double(), (0.5 * logvar.double()).exp()), 1)
    torch.manual_seed(5)
    z = q.sample((200000,))
    expected = (q.log_prob(z) - reference_prior.log_prob(z)).mean(0)
    torch.manual_seed(6)
    estimate = losses.kl_monte_carlo(mu, logvar, prior.log_prob, n_samples=200000)
    torch.testing.assert_close(estimate.double(), expected, atol=0.05, rtol=0.01)


def test_gmm_kl_is_not_evaluated_at_the_mean_only():
    """A point estimate at mu cannot see sigma; the real E_q[log q - log p] changes with it."""
    prior = gmm_prior()
    mu = torch.zeros(1, 3)
    torch.manual_seed(3)
    narrow = prior.kl(mu.expand(20000, 3), torch.full((20000, 3), -4.0)).mean()
    wide = prior.kl(mu.expand(20000, 3), torch.full((20000, 3), 1.0)).mean()
    assert abs(narrow - wide) > 1.0


@pytest.mark.parametrize("prior", [StandardNormalPrior(3), DiagonalGaussianPrior(torch.ones(3), torch.full((3,), 0.5)),
                                   gmm_prior()], ids=["standard", "goal", "gmm"])
def test_gradients_reach_mu_and_logvar(prior):
    mu, logvar = posterior(8, 3)
    mu.requires_grad_(True)
    logvar.requires_grad_(True)
    prior.kl(mu, logvar).mean().backward()
    for grad in (mu.grad, logvar.grad):
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_vae_loss_is_recon_plus_beta_kl():
    x, logits = torch.rand(4, 1, 28, 28), torch.randn(4, 1, 28, 28)
    mu, logvar = posterior(4, 3)
    for likelihood in LIKELIHOODS:
        total, recon, kl = losses.vae_loss(x, logits, mu, logvar, StandardNormalPrior(3), 2.5, None, likelihood)
        torch.testing.assert_close(total, recon + 2.5 * kl)
        torch.testing.assert_close(recon, losses.reconstruction_loss(logits, x, likelihood).mean())
    torch.testing.assert_close(kl, losses.kl_standard_normal(mu, logvar).mean())


def test_labelled_only_kl_picks_the_goal_prior_on_labelled_images_and_n01_elsewhere():
    mu, logvar = posterior(batch=6)
    goal = DiagonalGaussianPrior(torch.tensor([1.0, -1.0, 0.5, 0.0]), torch.tensor([0.2, 0.3, 0.5, 1.0]))
    mask = torch.tensor([True, False, True, False, False, True])
    kl = losses.labelled_only_kl(goal, mu, logvar, mask)
    torch.testing.assert_close(kl[mask], goal.kl(mu, logvar)[mask])
    torch.testing.assert_close(kl[~mask], losses.kl_standard_normal(mu, logvar)[~mask])
    x, logits = torch.rand(6, 1, 28, 28), torch.randn(6, 1, 28, 28)
    total, recon, kl_mean = losses.vae_loss(x, logits, mu, logvar, goal, 0.5, mask, "bernoulli")
    torch.testing.assert_close(kl_mean, kl.mean())
    torch.testing.assert_close(total, recon + 0.5 * kl.mean())
